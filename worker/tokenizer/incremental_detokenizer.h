// Turns a stream of generated ids into text deltas that never end inside a UTF-8 character.
//
// Concatenating every Push result and the final Flush gives exactly Tokenizer::Decode of all the ids: bytes
// that can no longer become valid UTF-8 are rendered as U+FFFD as soon as that is certain, and a character
// whose bytes are split across tokens is held back until its last byte arrives.
#pragma once

#include <cstdint>
#include <string>

#include "worker/tokenizer/tokenizer.h"

namespace doze {

// Incremental decoding of one sequence; not thread-safe, one per sequence.
class IncrementalDetokenizer {
 public:
  // `tokenizer` must outlive this object. Special tokens are dropped when `skip_special_tokens` is set.
  explicit IncrementalDetokenizer(const Tokenizer* tokenizer, bool skip_special_tokens = false);

  // Adds one id and returns the text it completes (possibly empty).
  std::string Push(int32_t id);

  // Returns the text still held back, with U+FFFD for an incomplete character, and resets the held bytes.
  std::string Flush();

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_tokens_;
  std::string pending_;  // Bytes of an incomplete character (at most 3).
};

}  // namespace doze
