// A byte-level TextDecoderFactory for engine tests: token id t is the byte t; multi-byte UTF-8 characters are
// held back until complete, as the real incremental detokenizer does.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "worker/engine/text_decoder.h"

namespace doze {

class FakeByteDecoder : public IncrementalTextDecoder {
 public:
  std::string Push(int32_t token_id) override {
    pending_.push_back(static_cast<char>(token_id));
    if (!Complete()) return "";
    return std::exchange(pending_, "");
  }
  // An incomplete character becomes U+FFFD.
  std::string Flush() override { return pending_.empty() ? "" : (pending_.clear(), "\xEF\xBF\xBD"); }

 private:
  // Whether pending_ ends on a character boundary.
  bool Complete() const {
    const auto lead = static_cast<unsigned char>(pending_[0]);
    const size_t length = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return pending_.size() >= length;
  }
  std::string pending_;
};

class FakeByteDecoderFactory : public TextDecoderFactory {
 public:
  std::unique_ptr<IncrementalTextDecoder> NewDecoder() const override {
    return std::make_unique<FakeByteDecoder>();
  }
};

}  // namespace doze
