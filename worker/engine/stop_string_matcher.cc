#include "worker/engine/stop_string_matcher.h"

#include <algorithm>
#include <utility>

namespace doze {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stop_strings)
    : stop_strings_(std::move(stop_strings)) {}

std::string StopStringMatcher::Push(std::string_view text) {
  std::string released;
  Push(text, &released);
  return released;
}

void StopStringMatcher::Push(std::string_view text, std::string* released) {
  if (stopped_) return;
  if (stop_strings_.empty()) {
    released->append(text);
    return;
  }
  pending_.append(text);
  size_t first = std::string::npos;
  for (const std::string& stop : stop_strings_) first = std::min(first, pending_.find(stop));
  if (first != std::string::npos) {
    stopped_ = true;
    released->append(pending_, 0, first);
    pending_.clear();
    return;
  }
  const size_t num_released = pending_.size() - HeldBackLength();
  released->append(pending_, 0, num_released);
  pending_.erase(0, num_released);
}

std::string StopStringMatcher::Flush() {
  std::string released = std::move(pending_);
  pending_.clear();
  return released;
}

size_t StopStringMatcher::HeldBackLength() const {
  size_t longest = 0;
  for (const std::string& stop : stop_strings_) {
    const size_t max_len = std::min(stop.size() - 1, pending_.size());
    for (size_t len = max_len; len > longest; --len) {
      if (std::string_view(pending_).substr(pending_.size() - len) == std::string_view(stop).substr(0, len)) {
        longest = len;
        break;
      }
    }
  }
  return longest;
}

}  // namespace doze
