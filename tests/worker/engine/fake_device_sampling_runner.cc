#include "tests/worker/engine/fake_device_sampling_runner.h"

#include "absl/strings/str_cat.h"
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

absl::Status FakeDeviceSamplingRunner::SubmitForwardAndSample(const BatchMetadata& batch,
                                                              absl::Span<const DeviceSamplingRow> rows) {
  if (!async_sampling_) return absl::UnimplementedError("constructed without asynchronous sampling");
  if (outstanding_.size() >= 2) return absl::InternalError("a third step submitted before a collection");
  BatchMetadata resolved = batch;
  resolved.token_sources.clear();
  for (size_t r = 0; r < batch.token_sources.size(); ++r) {
    const int32_t source = batch.token_sources[r];
    if (source < 0) continue;
    if (outstanding_.empty() || source >= static_cast<int32_t>(last_submitted_.size())) {
      return absl::InternalError(
          absl::StrCat("row ", r, ": token source ", source, " without a step in flight"));
    }
    resolved.token_ids[r] = last_submitted_[source];
    ++num_sourced_rows_;
  }
  ASSIGN_OR_RETURN(std::vector<int32_t> tokens, ForwardAndSample(resolved, rows));
  if (!outstanding_.empty()) ++num_steps_ahead_;
  last_submitted_ = tokens;
  outstanding_.push_back(std::move(tokens));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> FakeDeviceSamplingRunner::CollectSamples() {
  if (outstanding_.empty()) return absl::InternalError("nothing to collect");
  std::vector<int32_t> tokens = std::move(outstanding_.front());
  outstanding_.pop_front();
  return tokens;
}

}  // namespace doze
