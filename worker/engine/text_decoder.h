// What the engine needs of a tokenizer: turning a stream of token ids into text, piece by piece. An interface
// so the engine does not depend on the tokenizer library and its tests can use a byte-level fake.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace doze {

// Decodes one request's output tokens incrementally.
class IncrementalTextDecoder {
 public:
  virtual ~IncrementalTextDecoder() = default;
  // Adds a token; returns the text that is now complete (a multi-byte character split over tokens waits).
  virtual std::string Push(int32_t token_id) = 0;
  // Returns whatever is still held back, at the end of the output.
  virtual std::string Flush() = 0;
};

// Makes a decoder per request.
class TextDecoderFactory {
 public:
  virtual ~TextDecoderFactory() = default;
  // A fresh decoder for one request's output.
  virtual std::unique_ptr<IncrementalTextDecoder> NewDecoder() const = 0;
};

}  // namespace doze
