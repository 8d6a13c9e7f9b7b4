// Finds stop strings in streamed text, across token boundaries.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace doze {

// Streams text through, holding back the longest tail that could still begin a stop string. When a stop
// string appears, the text before it is released and the stop string and everything after are dropped.
class StopStringMatcher {
 public:
  explicit StopStringMatcher(std::vector<std::string> stop_strings);

  // Adds decoded text; returns the text that is now certain not to be part of a stop string.
  std::string Push(std::string_view text);
  // Push that appends the released text to `released` instead of returning it.
  void Push(std::string_view text, std::string* released);
  // Releases the held-back tail (the output is over without a stop string completing).
  std::string Flush();
  // A stop string was found; later Push calls return nothing.
  bool stopped() const { return stopped_; }

 private:
  // Length of the longest suffix of pending_ that is a proper prefix of some stop string.
  size_t HeldBackLength() const;

  std::vector<std::string> stop_strings_;
  std::string pending_;
  bool stopped_ = false;
};

}  // namespace doze
