// Loads the Qwen tokenizer the tests run against, from $DOZE_TOKENIZER_DIR/tokenizer.json.
#pragma once

#include <cstdlib>
#include <memory>
#include <string>

#include "worker/tokenizer/tokenizer.h"

namespace doze {

// Returns the shared tokenizer, loaded once; aborts the test binary with the reason when it cannot be loaded.
inline const Tokenizer& TestTokenizer() {
  static const Tokenizer* tokenizer = [] {
    const char* dir = std::getenv("DOZE_TOKENIZER_DIR");
    std::string path = std::string(dir ? dir : ".cache/tokenizer-qwen3-3.7.2") + "/tokenizer.json";
    auto loaded = Tokenizer::FromFile(path);
    if (!loaded.ok()) {
      std::fprintf(stderr, "cannot load the test tokenizer (set DOZE_TOKENIZER_DIR): %s\n",
                   std::string(loaded.status().message()).c_str());
      std::abort();
    }
    return loaded->release();
  }();
  return *tokenizer;
}

}  // namespace doze
