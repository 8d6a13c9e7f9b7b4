// Per-request sampling and stopping settings, the OpenAI/vLLM vocabulary.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"

namespace doze {

// Temperatures below this sample greedily, as temperature 0 does: dividing logits by less overflows fp32
// (the engine applies it at admission).
constexpr float kMinSamplingTemperature = 1e-5f;

// How one request samples and when it stops. The defaults sample from the model's full distribution.
struct SamplingParams {
  // 0 is greedy (argmax of the penalised logits; ties go to the lowest id), and so is anything below
  // kMinSamplingTemperature.
  float temperature = 1.0f;
  // Keep the k most likely tokens (ties at the k-th logit kept, as Hugging Face does); 0 or -1: off.
  int top_k = 0;
  // Keep the smallest most-likely set whose probability reaches top_p; 1: off.
  float top_p = 1.0f;
  // Drop tokens less likely than min_p times the most likely one; 0: off.
  float min_p = 0.0f;
  // Same seed, same output, alone or in any batch. Unset: the engine draws one from its own generator.
  std::optional<uint64_t> seed;
  // Hugging Face semantics over prompt and output tokens: positive logits divided, negative multiplied; 1:
  // off.
  float repetition_penalty = 1.0f;
  // OpenAI semantics over output tokens: logit -= presence * [count > 0] + frequency * count.
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  // Added to the raw logits of the given token ids before anything else.
  absl::flat_hash_map<int32_t, float> logit_bias;
  // Return the log-probability of each chosen token, and of the top_logprobs most likely tokens. The numbers
  // are the log-softmax of the raw model logits (OpenAI's and vLLM's default), not of the penalised, tempered
  // ones.
  bool logprobs = false;
  int top_logprobs = 0;
  // Generation ends when one of these is sampled (the token is kept in the output ids, its text is not).
  std::vector<int32_t> stop_token_ids;
  // Generation ends when the text contains one of these; the stop string and what follows are not returned.
  std::vector<std::string> stop;
  // Most tokens to generate.
  int max_tokens = 16;
  // Keep going past the model's end-of-sequence tokens.
  bool ignore_eos = false;
  // When > 0: the top_logits highest raw logits and the logsumexp of the last prompt position (for golden
  // checks).
  int top_logits = 0;

  // Checks the ranges; the error names the field, e.g. "top_p: must be in (0, 1], got 0".
  absl::Status Validate(int vocab_size) const;
};

}  // namespace doze
