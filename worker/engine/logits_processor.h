// The steps that turn one row of raw logits into a sampling distribution, each a plain function over the row
// so each can be checked against a hand-computed distribution. Masked tokens are set to -infinity.
#pragma once

#include <cstdint>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"

namespace doze {

// logits[id] += bias for each entry.
void ApplyLogitBias(const absl::flat_hash_map<int32_t, float>& logit_bias, absl::Span<float> logits);

// Hugging Face's repetition penalty, once per distinct id of `token_ids`: a positive logit is divided by
// `penalty`, a negative one multiplied.
void ApplyRepetitionPenalty(float penalty, absl::Span<const int32_t> token_ids, absl::Span<float> logits);

// OpenAI's penalties: logits[id] -= presence * [count > 0] + frequency * count, for each id of `counts`.
void ApplyPresenceFrequencyPenalties(float presence, float frequency,
                                     const absl::flat_hash_map<int32_t, int>& counts,
                                     absl::Span<float> logits);

// logits /= temperature (temperature > 0).
void ApplyTemperature(float temperature, absl::Span<float> logits);

// The largest of `logits` that is not NaN (-infinity when none is).
float MaxLogit(absl::Span<const float> logits);

// The k-th largest of `values` (1 <= k <= size).
float KthLargest(absl::Span<const float> values, int k);

// Keeps the k largest logits and any tied with the k-th; k <= 0 or k >= size keeps all.
void MaskTopK(int k, absl::Span<float> logits);

// Keeps the smallest set of most likely tokens whose probability reaches p: a token stays while the
// probability of the tokens above it is below p (ties ordered by id). The most likely token always stays.
void MaskTopP(float p, absl::Span<float> logits);

// Keeps tokens whose probability is at least min_p times the largest.
void MaskMinP(float min_p, absl::Span<float> logits);

// The lowest id of the largest logit that is not NaN; 0 when every logit is NaN (as the GPU's argmax).
int32_t Argmax(absl::Span<const float> logits);

// log(sum(exp(logits))), computed stably; -infinity when every logit is.
double LogSumExp(absl::Span<const float> logits);

// Draws from softmax(logits) by inverse CDF over ids in order: the id where the cumulative probability first
// exceeds `uniform` in [0, 1).
int32_t SampleFromLogits(absl::Span<const float> logits, double uniform);

// A uniform number in [0, 1) that depends only on (seed, step): the draw of step `step` of a seeded sequence
// (kernels/sample_uniform.h, which the GPU sampler shares).
double SeededUniform(uint64_t seed, uint64_t step);

}  // namespace doze
