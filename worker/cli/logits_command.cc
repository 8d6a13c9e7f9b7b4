// doze logits: teacher-forced logits of every position of each prompt, written as raw little-endian fp32
// [num_tokens, vocab] files, for comparing a backend with a reference framework position by position.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>

#include "absl/strings/str_cat.h"
#include "worker/cli/command.h"
#include "worker/cli/engine_flags.h"
#include "worker/cli/sampling_flags.h"

namespace doze::cli {
namespace {

// One sequence occupying blocks 0.. of the pool, every row's logits wanted.
BatchMetadata WholePromptBatch(const std::vector<int32_t>& ids, int block_size) {
  const int n = static_cast<int>(ids.size());
  const int num_blocks = (n + block_size - 1) / block_size;
  BatchMetadata batch;
  batch.token_ids = ids;
  batch.positions.resize(n);
  std::iota(batch.positions.begin(), batch.positions.end(), 0);
  batch.slot_mapping = batch.positions;  // blocks 0, 1, ... in order: slot == position
  batch.query_start_loc = {0, n};
  batch.seq_lens = {n};
  batch.max_blocks_per_seq = num_blocks;
  batch.block_tables.resize(num_blocks);
  std::iota(batch.block_tables.begin(), batch.block_tables.end(), 0);
  batch.logits_indices = batch.positions;
  return batch;
}

absl::Status WriteLogits(ModelRunner& runner, const std::vector<int32_t>& ids, const std::string& path) {
  if (ids.empty()) return absl::InvalidArgumentError("empty prompt");
  const int needed_blocks = (static_cast<int>(ids.size()) + runner.block_size() - 1) / runner.block_size();
  if (needed_blocks > runner.num_kv_blocks())
    return absl::InvalidArgumentError("prompt longer than the KV pool");
  auto logits = runner.Forward(WholePromptBatch(ids, runner.block_size()));
  if (!logits.ok()) return logits.status();
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(logits->data),
            static_cast<std::streamsize>(sizeof(float) * logits->num_rows * logits->vocab_size));
  if (!out) return absl::DataLossError(absl::StrCat(path, ": write failed"));
  return absl::OkStatus();
}

}  // namespace

int LogitsCommand(int argc, char** argv) {
  po::options_description options("doze logits");
  options.add_options()("input", po::value<std::string>()->required(),
                        "JSON lines with prompt_ids, prompt or messages")(
      "out", po::value<std::string>()->required(), "output prefix: PREFIX.N.f32 for input line N (from 0)");
  AddEngineOptions(options);
  po::variables_map vm;
  if (auto code = ParseOptions(argc, argv, options, vm, "doze logits --model DIR --input FILE --out PREFIX"))
    return *code;
  if (vm["out"].as<std::string>().empty()) return Fail("--out: an empty prefix");
  // The input lines as `doze generate` reads them (their sampling fields unused).
  absl::StatusOr<std::vector<GenerateRequest>> requests =
      ReadGenerateRequests(vm["input"].as<std::string>(), SamplingParams());
  if (!requests.ok()) return Fail(std::string(requests.status().message()));
  auto model = ModelInstance::Create(ModelInstanceOptionsFromFlags(vm));
  if (!model.ok()) return Fail(std::string(model.status().message()));
  const int context = (*model)->checkpoint().config().max_position_embeddings;
  for (int index = 0; index < static_cast<int>(requests->size()); ++index) {
    auto ids = (*model)->PromptTokenIds((*requests)[index].prompt);
    if (!ids.ok()) return Fail(absl::StrCat("line ", index + 1, ": ", ids.status().message()));
    if (static_cast<int64_t>(ids->size()) > context) {
      return Fail(absl::StrCat("line ", index + 1, ": ", ids->size(),
                               " prompt tokens, more than the model's ", context, "-token context"));
    }
    std::string path = absl::StrCat(vm["out"].as<std::string>(), ".", index, ".f32");
    if (absl::Status status = WriteLogits((*model)->runner(), *ids, path); !status.ok()) {
      return Fail(absl::StrCat("line ", index + 1, ": ", status.message()));
    }
    std::cerr << "doze: " << ids->size() << " positions of logits to " << path << "\n";
  }
  return 0;
}

}  // namespace doze::cli
