// libFuzzer target for the tokenizer: arbitrary bytes are encoded (invalid UTF-8 must be refused, nothing may
// crash), the ids decoded at once and streamed, and the bytes also read as ids to decode.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "worker/tokenizer/incremental_detokenizer.h"
#include "worker/tokenizer/tokenizer.h"
#include "worker/tokenizer/utf8.h"

namespace {

const doze::Tokenizer& FuzzTokenizer() {
  static const doze::Tokenizer* tokenizer = [] {
    const char* dir = std::getenv("DOZE_TOKENIZER_DIR");
    auto loaded = doze::Tokenizer::FromFile(std::string(dir ? dir : ".cache/tokenizer-qwen3-3.7.2") +
                                            "/tokenizer.json");
    if (!loaded.ok()) {
      std::fprintf(stderr, "set DOZE_TOKENIZER_DIR: %s\n", std::string(loaded.status().message()).c_str());
      std::abort();
    }
    return loaded->release();
  }();
  return *tokenizer;
}

// Streams `ids` and aborts unless every delta is valid UTF-8 and all of them add up to Decode.
void CheckStreaming(const doze::Tokenizer& tokenizer, const std::vector<int32_t>& ids) {
  doze::IncrementalDetokenizer detok(&tokenizer);
  std::string streamed;
  for (int32_t id : ids) {
    std::string delta = detok.Push(id);
    if (doze::FindInvalidUtf8(delta)) std::abort();
    streamed += delta;
  }
  streamed += detok.Flush();
  if (streamed != tokenizer.Decode(ids)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const doze::Tokenizer& tokenizer = FuzzTokenizer();
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto ids = tokenizer.Encode(text);
  if (ids.ok() != !doze::FindInvalidUtf8(text).has_value()) std::abort();
  if (ids.ok()) {
    for (int32_t id : *ids) {
      if (!tokenizer.IsKnown(id)) std::abort();
    }
    CheckStreaming(tokenizer, *ids);
  }
  std::vector<int32_t> raw_ids(size / sizeof(int32_t));
  if (!raw_ids.empty()) std::memcpy(raw_ids.data(), data, raw_ids.size() * sizeof(int32_t));
  for (int32_t& id : raw_ids) id %= tokenizer.vocab_size() + 8;  // Mostly real ids, some unknown ones.
  if (doze::FindInvalidUtf8(tokenizer.Decode(raw_ids, /*skip_special_tokens=*/true))) std::abort();
  CheckStreaming(tokenizer, raw_ids);
  return 0;
}
