// The engine's TextDecoderFactory over the real tokenizer (worker/tokenizer/).
#pragma once

#include <memory>

#include "worker/engine/text_decoder.h"
#include "worker/tokenizer/tokenizer.h"

namespace doze {

// Gives each request an IncrementalDetokenizer over one shared Tokenizer.
class TokenizerTextDecoderFactory : public TextDecoderFactory {
 public:
  // `tokenizer` must outlive the factory and its decoders. Special tokens are left out of the text by
  // default, as OpenAI and vLLM do.
  explicit TokenizerTextDecoderFactory(const Tokenizer* tokenizer, bool skip_special_tokens = true);

  // A detokenizer for one request.
  std::unique_ptr<IncrementalTextDecoder> NewDecoder() const override;

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_tokens_;
};

}  // namespace doze
