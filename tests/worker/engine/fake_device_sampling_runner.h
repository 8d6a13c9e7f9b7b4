// FakeModelRunner with device sampling: ForwardAndSample picks each row's token from the fake logits by the
// DeviceSamplingRow alone (never a Sequence), as a GPU backend would, and counts which path each step took.
#pragma once

#include <cstdint>
#include <vector>

#include "tests/worker/engine/fake_model_runner.h"

namespace doze {

class FakeDeviceSamplingRunner : public FakeModelRunner {
 public:
  using FakeModelRunner::FakeModelRunner;

  bool SupportsDeviceSampling() const override { return true; }
  // Forward, then per row: argmax at temperature 0, else temperature, top-k, top-p, min-p and the inverse-CDF
  // draw of SeededUniform(seed, step).
  absl::StatusOr<std::vector<int32_t>> ForwardAndSample(const BatchMetadata& batch,
                                                        absl::Span<const DeviceSamplingRow> rows) override;
  // Forward, counted as a host-sampled step.
  absl::StatusOr<LogitsView> Forward(const BatchMetadata& batch) override;

  // Steps whose rows were sampled on the "device", and steps that returned logits to the host.
  int num_device_steps() const { return num_device_steps_; }
  int num_host_steps() const { return num_host_steps_; }

 private:
  int num_device_steps_ = 0;
  int num_host_steps_ = 0;
};

}  // namespace doze
