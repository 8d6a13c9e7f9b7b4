// The engine's TextDecoderFactory over the real tokenizer's incremental detokenizer.
#pragma once

#include <memory>

#include "worker/engine/text_decoder.h"
#include "worker/tokenizer/tokenizer.h"

namespace doze {

// Makes IncrementalDetokenizer-backed decoders; `tokenizer` must outlive the factory and its decoders.
class TokenizerTextDecoderFactory : public TextDecoderFactory {
 public:
  explicit TokenizerTextDecoderFactory(const Tokenizer* tokenizer, bool skip_special_tokens = true)
      : tokenizer_(tokenizer), skip_special_tokens_(skip_special_tokens) {}
  std::unique_ptr<IncrementalTextDecoder> NewDecoder() const override;

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_tokens_;
};

}  // namespace doze
