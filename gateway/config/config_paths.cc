#include "gateway/config/config_paths.h"

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gateway/config/api_key_file.h"
#include "gateway/lifecycle/state_store.h"

namespace doze::gateway {
namespace {

namespace fs = std::filesystem;

bool IsFile(const fs::path& path) {
  std::error_code error;
  return fs::is_regular_file(path, error);
}

// The model folder as the worker loads it (a Hugging Face directory).
void CheckModel(const std::string& dir, std::vector<std::string>* problems) {
  std::error_code error;
  if (!fs::is_directory(dir, error)) {
    problems->push_back(absl::StrCat("model.path: ", dir, " is not a directory"));
    return;
  }
  for (const char* name : {"config.json", "tokenizer.json"}) {
    if (!IsFile(fs::path(dir) / name))
      problems->push_back(absl::StrCat("model.path: ", dir, " has no ", name));
  }
  if (!IsFile(fs::path(dir) / "model.safetensors") &&
      !IsFile(fs::path(dir) / "model.safetensors.index.json")) {
    problems->push_back(
        absl::StrCat("model.path: ", dir, " has neither model.safetensors nor model.safetensors.index.json"));
  }
}

}  // namespace

std::string DefaultWorkerBinary() {
  std::error_code error;
  fs::path self = fs::read_symlink("/proc/self/exe", error);
  return (self.parent_path() / "doze-worker").string();
}

absl::Status CheckConfigPaths(const Config& config) {
  std::vector<std::string> problems;
  CheckModel(config.model.path, &problems);
  const std::string binary = config.workers.binary.empty() ? DefaultWorkerBinary() : config.workers.binary;
  const std::string key = config.workers.binary.empty() ? "workers.binary (default)" : "workers.binary";
  if (!IsFile(binary) || access(binary.c_str(), X_OK) != 0)
    problems.push_back(absl::StrCat(key, ": ", binary, " is not an executable file"));
  if (!config.server.api_keys_file.empty()) {
    if (absl::StatusOr<std::vector<std::string>> keys = ReadApiKeyFile(config.server.api_keys_file);
        !keys.ok())
      problems.push_back(absl::StrCat("server.api_keys_file: ", keys.status().message()));
  }
  if (const std::string& state = config.lifecycle.state_file; !state.empty()) {
    if (absl::Status usable = lifecycle::StateStore::CheckUsable(state); !usable.ok())
      problems.push_back(absl::StrCat("state_file: ", usable.message()));
  }
  if (problems.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrJoin(problems, "\n"));
}

}  // namespace doze::gateway
