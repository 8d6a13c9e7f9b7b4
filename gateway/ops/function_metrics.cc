#include "gateway/ops/function_metrics.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace doze::gateway {
namespace {

// Seconds, from sub-millisecond gateway work to minute-long cold starts.
const std::vector<double>& LatencyBounds() {
  static const std::vector<double> bounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                             0.5,    1,     2.5,    5,     10,   30,    60,   120};
  return bounds;
}

// Seconds, for one streamed message's way through the gateway: 10 us to 10 ms.
const std::vector<double>& MessageBounds() {
  static const std::vector<double> bounds = {0.00001, 0.00002, 0.00003, 0.00004, 0.00005, 0.000075, 0.0001,
                                             0.00015, 0.0002,  0.0003,  0.0004,  0.0005,  0.00075,  0.001,
                                             0.0015,  0.002,   0.003,   0.005,   0.0075,  0.01};
  return bounds;
}

std::string FormatValue(double value) { return absl::StrCat(value); }

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  size_t bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  absl::MutexLock lock(&mu_);
  ++counts_[bucket];
  sum_ += value;
  ++count_;
}

void Histogram::Render(const std::string& name, const std::string& labels, std::string* out) const {
  absl::MutexLock lock(&mu_);
  std::string prefix = labels.empty() ? "" : absl::StrCat(labels, ",");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    absl::StrAppend(out, name, "_bucket{", prefix, "le=\"", FormatValue(bounds_[i]), "\"} ", cumulative,
                    "\n");
  }
  cumulative += counts_.back();
  absl::StrAppend(out, name, "_bucket{", prefix, "le=\"+Inf\"} ", cumulative, "\n");
  std::string braces = labels.empty() ? "" : absl::StrCat("{", labels, "}");
  absl::StrAppend(out, name, "_sum", braces, " ", FormatValue(sum_), "\n");
  absl::StrAppend(out, name, "_count", braces, " ", count_, "\n");
}

FunctionMetrics::FunctionMetrics()
    : time_to_first_token_(LatencyBounds()),
      queue_wait_(LatencyBounds()),
      cold_start_(LatencyBounds()),
      gateway_overhead_(LatencyBounds()),
      stream_message_gateway_(MessageBounds()) {}

void FunctionMetrics::CountRequest(int status) {
  requests_.fetch_add(1);
  absl::MutexLock lock(&mu_);
  ++by_status_[status];
}

void FunctionMetrics::AddTokens(int64_t prompt_tokens, int64_t completion_tokens) {
  tokens_in_.fetch_add(prompt_tokens);
  tokens_out_.fetch_add(completion_tokens);
}

std::map<int, int64_t> FunctionMetrics::requests_by_status() const {
  absl::MutexLock lock(&mu_);
  return by_status_;
}

}  // namespace doze::gateway
