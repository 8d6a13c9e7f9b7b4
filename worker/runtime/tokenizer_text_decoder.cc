#include "worker/runtime/tokenizer_text_decoder.h"

#include "worker/tokenizer/incremental_detokenizer.h"

namespace doze {
namespace {

class DetokenizerDecoder : public IncrementalTextDecoder {
 public:
  DetokenizerDecoder(const Tokenizer* tokenizer, bool skip_special_tokens)
      : detokenizer_(tokenizer, skip_special_tokens) {}
  std::string Push(int32_t token_id) override { return detokenizer_.Push(token_id); }
  std::string Flush() override { return detokenizer_.Flush(); }

 private:
  IncrementalDetokenizer detokenizer_;
};

}  // namespace

std::unique_ptr<IncrementalTextDecoder> TokenizerTextDecoderFactory::NewDecoder() const {
  return std::make_unique<DetokenizerDecoder>(tokenizer_, skip_special_tokens_);
}

}  // namespace doze
