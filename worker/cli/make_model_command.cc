// doze make-model: writes a random checkpoint in Hugging Face layout.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "worker/cli/command.h"
#include "worker/cli/options.h"
#include "worker/model/random_checkpoint.h"

namespace doze::cli {
namespace {

// Copies an optional integer flag into an optional shape override.
void TakeOverride(const po::variables_map& vm, const char* flag, std::optional<int>& field) {
  if (vm.count(flag)) field = vm[flag].as<int>();
}

// Why make-model may not write into `out`: it is not a folder, or (without `force`) it is a folder that
// already holds files. Empty when it may.
std::string OutFolderProblem(const std::string& out, bool force) {
  std::error_code error;
  if (!std::filesystem::exists(out, error)) return "";
  if (!std::filesystem::is_directory(out, error))
    return absl::StrCat("--out: ", out, " exists and is not a folder");
  if (force || std::filesystem::is_empty(out, error)) return "";
  return absl::StrCat("--out: ", out,
                      " already holds files; pass --force to write the checkpoint into it (replacing its "
                      "config.json, model.safetensors and tokenizer files)");
}

}  // namespace

int MakeModelCommand(int argc, char** argv) {
  const std::string presets = absl::StrJoin(RandomCheckpointPresets(), "|");
  po::options_description options("doze make-model");
  options.add_options()("preset", po::value<std::string>()->default_value("tiny"), presets.c_str())(
      "seed", po::value<uint64_t>()->default_value(0), "random seed")(
      "no-tie", po::bool_switch(), "write a separate lm_head instead of tying it to the embeddings")(
      "out", po::value<std::string>()->required(), "output directory")(
      "force", po::bool_switch(),
      "write into --out even when it already holds files (its checkpoint's are replaced)")(
      "tokenizer", po::value<std::string>(),
      "tokenizer.json to copy in (with a Qwen2.5 tokenizer_config.json)")(
      "hidden-size", po::value<int>(), "override the preset's hidden size")("num-layers", po::value<int>(),
                                                                            "override the number of layers")(
      "num-heads", po::value<int>(), "override the number of attention heads")(
      "num-kv-heads", po::value<int>(), "override the number of key/value heads")(
      "head-dim", po::value<int>(), "override the head dimension")(
      "intermediate-size", po::value<int>(), "override the MLP width")("vocab-size", po::value<int>(),
                                                                       "override the vocabulary size");
  po::variables_map vm;
  const char* usage =
      "doze make-model --preset tiny|qwen2.5-0.5b [--seed N] [--no-tie] --out DIR [--force] [--tokenizer "
      "PATH]";
  if (auto code = ParseOptions(argc, argv, options, vm, usage)) return *code;

  RandomCheckpointOptions checkpoint;
  checkpoint.preset = vm["preset"].as<std::string>();
  checkpoint.seed = vm["seed"].as<uint64_t>();
  checkpoint.tie_word_embeddings = !vm["no-tie"].as<bool>();
  checkpoint.out_dir = vm["out"].as<std::string>();
  if (vm.count("tokenizer")) checkpoint.tokenizer_path = vm["tokenizer"].as<std::string>();
  TakeOverride(vm, "hidden-size", checkpoint.hidden_size);
  TakeOverride(vm, "num-layers", checkpoint.num_layers);
  TakeOverride(vm, "num-heads", checkpoint.num_heads);
  TakeOverride(vm, "num-kv-heads", checkpoint.num_kv_heads);
  TakeOverride(vm, "head-dim", checkpoint.head_dim);
  TakeOverride(vm, "intermediate-size", checkpoint.intermediate_size);
  TakeOverride(vm, "vocab-size", checkpoint.vocab_size);

  // Checked before anything is written, so that a bad path leaves no half-made checkpoint behind, and a
  // folder that holds files (a real model's, perhaps) is not overwritten unasked.
  if (std::string problem = OutFolderProblem(checkpoint.out_dir, vm["force"].as<bool>()); !problem.empty())
    return Fail(problem);
  if (!checkpoint.tokenizer_path.empty()) {
    std::error_code error;
    if (!std::filesystem::is_regular_file(checkpoint.tokenizer_path, error) ||
        access(checkpoint.tokenizer_path.c_str(), R_OK) != 0) {
      return Fail(absl::StrCat("--tokenizer: ", checkpoint.tokenizer_path, " is not a readable file"));
    }
  }
  auto start = std::chrono::steady_clock::now();
  if (absl::Status status = WriteRandomCheckpoint(checkpoint); !status.ok()) {
    return Fail(std::string(status.message()));
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cerr << "doze: wrote a random " << checkpoint.preset << " checkpoint to " << checkpoint.out_dir
            << " in " << seconds << " s\n";
  return 0;
}

}  // namespace doze::cli
