// The sampling flags shared by `doze generate`, `doze chat` and `doze client`, and the JSON-lines request
// format.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/cli/options.h"
#include "worker/engine/sampling_params.h"
#include "worker/runtime/model_instance.h"

namespace doze::cli {

// Adds --max-tokens, --temperature, --top-p, --top-k, --min-p, --seed, --ignore-eos, --top-logits,
// --logprobs,
// --repetition-penalty, --presence-penalty, --frequency-penalty and --stop.
void AddSamplingOptions(po::options_description& options);

// The defaults the flags give every request. Greedy unless --temperature says otherwise.
absl::StatusOr<SamplingParams> SamplingParamsFromFlags(const po::variables_map& vm);

// One line of a `doze generate` input file.
struct GenerateRequest {
  PromptInput prompt;
  SamplingParams params;
};

// Parses one JSON object: exactly one of "prompt_ids", "prompt" or "messages", plus optional per-request
// overrides of the flags ("max_tokens", "temperature", "top_p", "top_k", "min_p", "seed", "ignore_eos",
// "stop").
absl::StatusOr<GenerateRequest> ParseGenerateRequest(const nlohmann::json& line,
                                                     const SamplingParams& defaults);

// Reads and parses every non-blank line of a `doze generate` input file; an error names the file and line.
absl::StatusOr<std::vector<GenerateRequest>> ReadGenerateRequests(const std::string& path,
                                                                  const SamplingParams& defaults);

}  // namespace doze::cli
