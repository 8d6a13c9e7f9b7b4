// doze generate: every line of a JSON-lines file through one engine at once (continuous batching); results in
// input order on stdout, the engine's counters as one JSON line on stderr.
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "worker/cli/command.h"
#include "worker/cli/engine_flags.h"
#include "worker/cli/generation_result.h"
#include "worker/cli/sampling_flags.h"

namespace doze::cli {
namespace {

using nlohmann::json;

json CountersJson(const EngineCounters& c) {
  return {{"running", c.num_running},
          {"waiting", c.num_waiting},
          {"kv_blocks_used", c.kv_blocks_used},
          {"kv_blocks_total", c.kv_blocks_total},
          {"prefix_cache_queried_tokens", c.prefix_cache_queried_tokens},
          {"prefix_cache_hit_tokens", c.prefix_cache_hit_tokens},
          {"prefix_cache_hit_rate", c.prefix_cache_hit_rate},
          {"preemptions", c.num_preemptions},
          {"prompt_tokens", c.prompt_tokens},
          {"generated_tokens", c.generated_tokens},
          {"computed_tokens", c.computed_tokens}};
}

// Adds every request to the engine and steps it until all are finished.
absl::StatusOr<std::vector<GenerationResult>> RunAll(ModelInstance& model,
                                                     const std::vector<GenerateRequest>& requests) {
  absl::flat_hash_map<uint64_t, size_t> index_of;
  for (size_t i = 0; i < requests.size(); ++i) {
    auto ids = model.PromptTokenIds(requests[i].prompt);
    if (!ids.ok())
      return absl::InvalidArgumentError(absl::StrCat("request ", i + 1, ": ", ids.status().message()));
    auto id = model.engine().AddRequest(*std::move(ids), requests[i].params);
    if (!id.ok())
      return absl::InvalidArgumentError(absl::StrCat("request ", i + 1, ": ", id.status().message()));
    index_of[*id] = i;
  }
  std::vector<GenerationResult> results(requests.size());
  while (model.engine().HasUnfinished()) {
    for (const RequestOutput& output : model.engine().Step()) results[index_of.at(output.id)].Add(output);
  }
  return results;
}

}  // namespace

int GenerateCommand(int argc, char** argv) {
  po::options_description options("doze generate");
  options.add_options()("input", po::value<std::string>()->required(),
                        "JSON lines, each with prompt_ids, prompt or messages");
  AddEngineOptions(options);
  AddSamplingOptions(options);
  po::variables_map vm;
  const char* usage = "doze generate --model DIR --input FILE [--backend cpu|cuda] [sampling flags]";
  if (auto code = ParseOptions(argc, argv, options, vm, usage)) return *code;

  auto defaults = SamplingParamsFromFlags(vm);
  if (!defaults.ok()) return Fail(std::string(defaults.status().message()));
  auto requests = ReadGenerateRequests(vm["input"].as<std::string>(), *defaults);
  if (!requests.ok()) return Fail(std::string(requests.status().message()));
  auto model = ModelInstance::Create(ModelInstanceOptionsFromFlags(vm));
  if (!model.ok()) return Fail(std::string(model.status().message()));
  auto results = RunAll(**model, *requests);
  if (!results.ok()) return Fail(std::string(results.status().message()));
  for (const GenerationResult& result : *results) {
    std::cout << result.ToJson().dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
  }
  std::cout.flush();
  std::cerr << CountersJson((*model)->engine().counters()).dump() << std::endl;
  return 0;
}

}  // namespace doze::cli
