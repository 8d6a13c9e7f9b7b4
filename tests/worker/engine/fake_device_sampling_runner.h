// FakeModelRunner with device sampling: ForwardAndSample picks each row's token from the fake logits by the
// DeviceSamplingRow alone (never a Sequence), as a GPU backend would, and counts which path each step took.
// Asynchronous sampling (unless constructed without it) runs the step at submission, after taking each row's
// token source from the previously submitted step's tokens, and hands the tokens out in order.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "tests/worker/engine/fake_model_runner.h"

namespace doze {

class FakeDeviceSamplingRunner : public FakeModelRunner {
 public:
  FakeDeviceSamplingRunner(int vocab_size, int num_kv_blocks, bool async_sampling = true)
      : FakeModelRunner(vocab_size, num_kv_blocks), async_sampling_(async_sampling) {}

  bool SupportsDeviceSampling() const override { return true; }
  bool SupportsAsyncSampling() const override { return async_sampling_; }
  // Internal error with two steps outstanding already, or a token source outside the previous step's rows.
  absl::Status SubmitForwardAndSample(const BatchMetadata& batch,
                                      absl::Span<const DeviceSamplingRow> rows) override;
  absl::StatusOr<std::vector<int32_t>> CollectSamples() override;
  // Forward, then per row: argmax at temperature 0, else temperature, top-k, top-p, min-p and the inverse-CDF
  // draw of SeededUniform(seed, step).
  absl::StatusOr<std::vector<int32_t>> ForwardAndSample(const BatchMetadata& batch,
                                                        absl::Span<const DeviceSamplingRow> rows) override;
  // Forward, counted as a host-sampled step.
  absl::StatusOr<LogitsView> Forward(const BatchMetadata& batch) override;

  // Steps whose rows were sampled on the "device", and steps that returned logits to the host.
  int num_device_steps() const { return num_device_steps_; }
  int num_host_steps() const { return num_host_steps_; }
  // Steps submitted while another was outstanding, and rows that read a token source.
  int num_steps_ahead() const { return num_steps_ahead_; }
  int num_sourced_rows() const { return num_sourced_rows_; }

 private:
  bool async_sampling_;
  int num_device_steps_ = 0;
  int num_host_steps_ = 0;
  int num_steps_ahead_ = 0;
  int num_sourced_rows_ = 0;
  std::vector<int32_t> last_submitted_;           // the tokens of the latest submitted step
  std::deque<std::vector<int32_t>> outstanding_;  // submitted, not collected
};

}  // namespace doze
