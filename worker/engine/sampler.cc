#include "worker/engine/sampler.h"

#include <algorithm>

#include "worker/engine/logits_processor.h"

namespace doze {
namespace {

bool HasPenalties(const SamplingParams& params) {
  return !params.logit_bias.empty() || params.repetition_penalty != 1.0f || params.presence_penalty != 0.0f ||
         params.frequency_penalty != 0.0f;
}

// Whether `seq`'s next token needs the host sampler: logprobs, or top_logits on its first output token.
bool NeedsHostSampling(const Sequence& seq) {
  const SamplingParams& params = seq.params();
  return params.logprobs || (params.top_logits > 0 && seq.num_output_tokens() == 0);
}

}  // namespace

std::optional<DeviceSamplingRow> DeviceSamplingRowOf(const Sequence& seq) {
  if (NeedsHostSampling(seq)) return std::nullopt;
  const SamplingParams& params = seq.params();
  DeviceSamplingRow row{params.temperature, params.top_k,   params.top_p,
                        params.min_p,       seq.rng_seed(), static_cast<uint64_t>(seq.num_output_tokens())};
  if (HasPenalties(params)) row.edits = seq.logit_edits();
  return row;
}

bool CanSampleAhead(const Sequence& seq) { return !NeedsHostSampling(seq) && !HasPenalties(seq.params()); }

std::vector<TokenValue> TopValues(absl::Span<const float> values, int k) {
  k = std::min<int>(k, static_cast<int>(values.size()));
  std::vector<TokenValue> top;
  if (k <= 0) return top;
  // Only values at or above the k-th largest are candidates: a short list to sort.
  const float kth = KthLargest(values, k);
  for (size_t id = 0; id < values.size(); ++id) {
    if (values[id] >= kth) top.push_back({static_cast<int32_t>(id), values[id]});
  }
  std::sort(top.begin(), top.end(), [](const TokenValue& a, const TokenValue& b) {
    return a.value > b.value || (a.value == b.value && a.token_id < b.token_id);
  });
  top.resize(k);
  return top;
}

std::vector<float> Sampler::Process(absl::Span<const float> logits, const Sequence& seq) const {
  const SamplingParams& params = seq.params();
  std::vector<float> processed(logits.begin(), logits.end());
  absl::Span<float> row = absl::MakeSpan(processed);
  ApplyLogitBias(params.logit_bias, row);
  ApplyRepetitionPenalty(params.repetition_penalty, seq.token_ids(), row);
  ApplyPresenceFrequencyPenalties(params.presence_penalty, params.frequency_penalty,
                                  seq.output_token_counts(), row);
  if (params.temperature == 0.0f) return processed;
  ApplyTemperature(params.temperature, row);
  MaskTopK(params.top_k, row);
  MaskTopP(params.top_p, row);
  MaskMinP(params.min_p, row);
  return processed;
}

int32_t Sampler::ChooseToken(absl::Span<const float> logits, const Sequence& seq) const {
  const SamplingParams& params = seq.params();
  // Plain greedy reads the model's row as it is: no copy.
  if (params.temperature == 0.0f && !HasPenalties(params)) return Argmax(logits);
  const std::vector<float> processed = Process(logits, seq);
  return params.temperature == 0.0f
             ? Argmax(processed)
             : SampleFromLogits(processed, SeededUniform(seq.rng_seed(), seq.num_output_tokens()));
}

SampleResult Sampler::Sample(absl::Span<const float> logits, const Sequence& seq) const {
  const SamplingParams& params = seq.params();
  SampleResult result;
  result.token_id = ChooseToken(logits, seq);
  if (params.logprobs || (params.top_logits > 0 && seq.num_output_tokens() == 0)) {
    const double log_z = LogSumExp(logits);
    if (params.logprobs) {
      TokenLogprobs& lp = result.logprobs.emplace();
      lp.token_id = result.token_id;
      lp.logprob = static_cast<float>(logits[result.token_id] - log_z);
      lp.top = TopValues(logits, params.top_logprobs);
      for (TokenValue& t : lp.top) t.value = static_cast<float>(t.value - log_z);
    }
    if (params.top_logits > 0 && seq.num_output_tokens() == 0) {
      result.top_logits = TopLogits{TopValues(logits, params.top_logits), log_z};
    }
  }
  return result;
}

int32_t SampleDeviceRowOnHost(absl::Span<const float> logits, const DeviceSamplingRow& row) {
  if (row.temperature == 0.0f && row.edits.empty()) return Argmax(logits);
  std::vector<float> processed(logits.begin(), logits.end());
  absl::Span<float> span = absl::MakeSpan(processed);
  ApplyLogitEdits(row.edits, span);
  if (row.temperature == 0.0f) return Argmax(span);
  ApplyTemperature(row.temperature, span);
  MaskTopK(row.top_k, span);
  MaskTopP(row.top_p, span);
  MaskMinP(row.min_p, span);
  return SampleFromLogits(span, SeededUniform(row.seed, row.step));
}

}  // namespace doze
