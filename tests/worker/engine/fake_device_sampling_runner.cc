#include "tests/worker/engine/fake_device_sampling_runner.h"

#include "worker/common/status_macros.h"
#include "worker/engine/logits_processor.h"

namespace doze {
namespace {

int32_t SampleRow(absl::Span<const float> logits, const DeviceSamplingRow& row) {
  if (row.temperature == 0.0f) return Argmax(logits);
  std::vector<float> tempered(logits.begin(), logits.end());
  absl::Span<float> span = absl::MakeSpan(tempered);
  ApplyTemperature(row.temperature, span);
  MaskTopK(row.top_k, span);
  MaskTopP(row.top_p, span);
  MaskMinP(row.min_p, span);
  return SampleFromLogits(span, SeededUniform(row.seed, row.step));
}

}  // namespace

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
    tokens.push_back(SampleRow(absl::MakeConstSpan(logits.row(i), logits.vocab_size), rows[i]));
  }
  return tokens;
}

}  // namespace doze
