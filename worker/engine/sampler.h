// Picks each sequence's next token from its row of raw logits, per its SamplingParams.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/types/span.h"
#include "worker/engine/model_runner.h"
#include "worker/engine/sequence.h"

namespace doze {

// A token id and a number attached to it (a log-probability or a raw logit).
struct TokenValue {
  int32_t token_id = 0;
  float value = 0.0f;
};

// OpenAI logprobs of one chosen token: log-softmax of the raw model logits (not of the penalised, tempered
// ones).
struct TokenLogprobs {
  int32_t token_id = 0;
  float logprob = 0.0f;
  std::vector<TokenValue> top;  // top_logprobs most likely tokens, most likely first
};

// The highest raw logits of the last prompt position and the row's logsumexp (for checks against goldens).
struct TopLogits {
  std::vector<TokenValue> top;  // most likely first
  double logsumexp = 0.0;
};

struct SampleResult {
  int32_t token_id = 0;
  std::optional<TokenLogprobs> logprobs;  // when params.logprobs
  std::optional<TopLogits> top_logits;    // when params.top_logits > 0 and this is the first output token
};

// The processing order, after Hugging Face: logit bias, repetition penalty (prompt + output), presence and
// frequency penalties (output); then greedy argmax at temperature 0, or temperature, top-k, top-p, min-p and
// a draw. The draw is SeededUniform(sequence seed, output index), so a sequence's tokens do not depend on
// what else is in the batch or on preemption.
class Sampler {
 public:
  // Samples the next token of `seq` from `logits`, the raw model output of its last token.
  SampleResult Sample(absl::Span<const float> logits, const Sequence& seq) const;

 private:
  // The next token alone: argmax or a seeded draw from the processed row.
  int32_t ChooseToken(absl::Span<const float> logits, const Sequence& seq) const;
  // Penalised and masked logits, ready for argmax or a draw.
  std::vector<float> Process(absl::Span<const float> logits, const Sequence& seq) const;
};

// The settings under which ModelRunner::ForwardAndSample draws what Sampler::Sample would for `seq`'s next
// token, penalties and logit bias included (as Sequence::logit_edits, valid until the sequence changes);
// nullopt when the row needs the host: logprobs, or top_logits on its first output token.
std::optional<DeviceSamplingRow> DeviceSamplingRowOf(const Sequence& seq);

// Whether `seq`'s next token can be drawn on the device before its previous token has reached the host: a
// device row (DeviceSamplingRowOf) without edits, which depend on the tokens so far.
bool CanSampleAhead(const Sequence& seq);

// The token a device sampler must pick for `row` from `logits`, computed on the host: the reference that
// device samplers and fake runners are held to.
int32_t SampleDeviceRowOnHost(absl::Span<const float> logits, const DeviceSamplingRow& row);

// The top `k` entries of `values`, largest first (ties: lowest id first).
std::vector<TokenValue> TopValues(absl::Span<const float> values, int k);

}  // namespace doze
