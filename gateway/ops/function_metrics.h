// The counters and histograms of one function: what /ops/status and /metrics report. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace doze::gateway {

// A Prometheus histogram: cumulative counts per upper bound, sum and count.
class Histogram {
 public:
  // `bounds` are the bucket upper bounds in increasing order (+Inf is implied).
  explicit Histogram(std::vector<double> bounds);

  // Records one value.
  void Observe(double value);

  // Appends the `_bucket`, `_sum` and `_count` lines of `name` with the label text `labels` (`k="v"`).
  void Render(const std::string& name, const std::string& labels, std::string* out) const;

 private:
  const std::vector<double> bounds_;
  mutable absl::Mutex mu_;
  std::vector<uint64_t> counts_ ABSL_GUARDED_BY(mu_);  // Per bucket (not cumulative); the last is +Inf.
  double sum_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t count_ ABSL_GUARDED_BY(mu_) = 0;
};

// Everything counted for one function.
class FunctionMetrics {
 public:
  FunctionMetrics();

  // Counts a request that ended with HTTP `status` (499: the client left).
  void CountRequest(int status);

  // Counts a stream that ended with an error event after its 200 (counted as a request with status 200).
  void CountStreamError() { stream_errors_.fetch_add(1); }

  // Adds prompt and generated tokens.
  void AddTokens(int64_t prompt_tokens, int64_t completion_tokens);

  // Returns requests by HTTP status.
  std::map<int, int64_t> requests_by_status() const;

  // Returns every request counted.
  int64_t requests() const { return requests_.load(); }
  int64_t tokens_in() const { return tokens_in_.load(); }
  int64_t tokens_out() const { return tokens_out_.load(); }
  int64_t stream_errors() const { return stream_errors_.load(); }

  Histogram& time_to_first_token() { return time_to_first_token_; }
  Histogram& queue_wait() { return queue_wait_; }
  Histogram& cold_start() { return cold_start_; }
  Histogram& gateway_overhead() { return gateway_overhead_; }
  Histogram& stream_message_gateway() { return stream_message_gateway_; }
  const Histogram& time_to_first_token() const { return time_to_first_token_; }
  const Histogram& queue_wait() const { return queue_wait_; }
  const Histogram& cold_start() const { return cold_start_; }
  const Histogram& gateway_overhead() const { return gateway_overhead_; }
  const Histogram& stream_message_gateway() const { return stream_message_gateway_; }

 private:
  std::atomic<int64_t> requests_{0};
  std::atomic<int64_t> tokens_in_{0};
  std::atomic<int64_t> tokens_out_{0};
  std::atomic<int64_t> stream_errors_{0};
  mutable absl::Mutex mu_;
  std::map<int, int64_t> by_status_ ABSL_GUARDED_BY(mu_);
  Histogram time_to_first_token_;
  Histogram queue_wait_;
  Histogram cold_start_;
  Histogram gateway_overhead_;
  Histogram stream_message_gateway_;  // Fine buckets: 10 us to 10 ms.
};

}  // namespace doze::gateway
