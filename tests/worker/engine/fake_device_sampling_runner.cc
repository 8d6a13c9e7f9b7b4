#include "tests/worker/engine/fake_device_sampling_runner.h"

#include "worker/common/status_macros.h"
#include "worker/engine/logits_processor.h"
#include "worker/engine/sampler.h"

namespace doze {
absl::StatusOr<LogitsView> FakeDeviceSamplingRunner::Forward(const BatchMetadata& batch) {
  ++num_host_steps_;
  return FakeModelRunner::Forward(batch);
}

absl::StatusOr<std::vector<int32_t>> FakeDeviceSamplingRunner::ForwardAndSample(
    const BatchMetadata& batch, absl::Span<const DeviceSamplingRow> rows) {
  ASSIGN_OR_RETURN(LogitsView logits, FakeModelRunner::Forward(batch));
  if (static_cast<int>(rows.size()) != logits.num_rows) {
    return absl::InternalError("ForwardAndSample: one DeviceSamplingRow per logits row expected");
  }
  ++num_device_steps_;
  std::vector<int32_t> tokens;
  for (int i = 0; i < logits.num_rows; ++i) {
    tokens.push_back(SampleDeviceRowOnHost(absl::MakeConstSpan(logits.row(i), logits.vocab_size), rows[i]));
  }
  return tokens;
}

}  // namespace doze
