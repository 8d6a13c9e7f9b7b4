// One change to one logit before sampling: what logit bias and the repetition, presence and frequency
// penalties do to a token, folded into one record so that a device sampler can apply them without the
// sequence's history (worker/engine/sampler.h builds them, kernels::ApplyLogitEdits applies them on the GPU).
#pragma once

#include <cstdint>

#include "absl/types/span.h"

namespace doze {

// In the host Sampler's order: add `bias`, then the repetition penalty (v > 0 ? v / repetition : v *
// repetition; 1 leaves v), then subtract `subtract` (presence * [count > 0] + frequency * count).
struct LogitEdit {
  int32_t token_id = 0;
  float bias = 0.0f;
  float repetition = 1.0f;
  float subtract = 0.0f;
};

// Applies `edits` (at most one per token id) to `logits` with the same float operations as the host Sampler.
void ApplyLogitEdits(absl::Span<const LogitEdit> edits, absl::Span<float> logits);

}  // namespace doze
