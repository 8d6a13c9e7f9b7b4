#include "worker/engine/stop_string_matcher.h"

#include <algorithm>
#include <utility>

namespace doze {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stop_strings)
    : stop_strings_(std::move(stop_strings)) {}

std::string StopStringMatcher::Push(std::string_view text) {
  if (stopped_) return "";
  if (stop_strings_.empty()) return std::string(text);
  pending_.append(text);
  size_t first = std::string::npos;
  for (const std::string& stop : stop_strings_) first = std::min(first, pending_.find(stop));
  std::string released;
  if (first != std::string::npos) {
    stopped_ = true;
    released = pending_.substr(0, first);
    pending_.clear();
    return released;
  }
  const size_t keep = HeldBackLength();
  released = pending_.substr(0, pending_.size() - keep);
  pending_.erase(0, pending_.size() - keep);
  return released;
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
