// CheckConfigPaths (--check-config): every missing file the configuration names is reported under its key.
#include "gateway/config/config_paths.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace doze::gateway {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

namespace fs = std::filesystem;

class ConfigPathsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("doze-config-paths-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "model");
    config_.model.path = (dir_ / "model").string();
    config_.workers.binary = (dir_ / "worker").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  void Touch(const fs::path& path) { std::ofstream(path) << "x"; }

  fs::path dir_;
  Config config_;
};

TEST_F(ConfigPathsTest, EveryMissingFileIsNamedUnderItsKey) {
  absl::Status status = CheckConfigPaths(config_);
  ASSERT_FALSE(status.ok());
  const std::string message(status.message());
  EXPECT_THAT(message, HasSubstr("model.path: " + config_.model.path + " has no config.json"));
  EXPECT_THAT(message, HasSubstr("has no tokenizer.json"));
  EXPECT_THAT(message, HasSubstr("has neither model.safetensors nor model.safetensors.index.json"));
  EXPECT_THAT(message, HasSubstr("workers.binary: " + config_.workers.binary + " is not an executable file"));
}

TEST_F(ConfigPathsTest, ACompleteModelFolderAndAnExecutableBinaryPass) {
  for (const char* name : {"config.json", "tokenizer.json", "model.safetensors.index.json"})
    Touch(dir_ / "model" / name);
  Touch(dir_ / "worker");
  EXPECT_THAT(std::string(CheckConfigPaths(config_).message()), HasSubstr("is not an executable file"));
  chmod((dir_ / "worker").c_str(), 0755);
  EXPECT_TRUE(CheckConfigPaths(config_).ok()) << CheckConfigPaths(config_);
  config_.model.path = (dir_ / "nowhere").string();
  EXPECT_THAT(std::string(CheckConfigPaths(config_).message()), HasSubstr("nowhere is not a directory"));
}

// The API key file must be there and hold a key (the gateway would refuse to start otherwise).
TEST_F(ConfigPathsTest, TheApiKeyFileMustHoldAKey) {
  for (const char* name : {"config.json", "tokenizer.json", "model.safetensors"})
    Touch(dir_ / "model" / name);
  Touch(dir_ / "worker");
  chmod((dir_ / "worker").c_str(), 0755);
  config_.server.api_keys_file = (dir_ / "keys.txt").string();
  EXPECT_THAT(std::string(CheckConfigPaths(config_).message()),
              HasSubstr("server.api_keys_file: " + config_.server.api_keys_file + ": cannot open"));
  std::ofstream(dir_ / "keys.txt") << "# only a comment\n\n";
  EXPECT_THAT(std::string(CheckConfigPaths(config_).message()), HasSubstr("holds no API key"));
  std::ofstream(dir_ / "keys.txt") << "# a comment\r\n  key-one \r\n";
  EXPECT_TRUE(CheckConfigPaths(config_).ok()) << CheckConfigPaths(config_);
}

// The state file: what the gateway would refuse at start (a folder, a path under a file, a file that is not
// a database) is named; a missing one in a folder that can be made passes, and nothing is created.
TEST_F(ConfigPathsTest, TheStateFileMustBeUsable) {
  for (const char* name : {"config.json", "tokenizer.json", "model.safetensors"})
    Touch(dir_ / "model" / name);
  Touch(dir_ / "worker");
  chmod((dir_ / "worker").c_str(), 0755);
  const auto problem = [this](const fs::path& state) {
    config_.lifecycle.state_file = state.string();
    return std::string(CheckConfigPaths(config_).message());
  };
  EXPECT_EQ(problem(dir_ / "new" / "deeper" / "state.db"), "");
  EXPECT_FALSE(fs::exists(dir_ / "new"));
  EXPECT_EQ(problem(dir_ / "model"), "state_file: " + (dir_ / "model").string() + " is a folder");
  EXPECT_THAT(problem(dir_ / "worker" / "state.db"),
              HasSubstr("state_file: " + (dir_ / "worker" / "state.db").string() + ": " +
                        (dir_ / "worker").string() + " is not a folder"));
  std::ofstream(dir_ / "text.db")
      << "this is not a database, but it is long enough to look at its header bytes\n";
  EXPECT_THAT(problem(dir_ / "text.db"),
              HasSubstr("state_file: " + (dir_ / "text.db").string() + ": file is not a database"));
}

TEST_F(ConfigPathsTest, AnEmptyBinaryMeansTheWorkerBesideThisProgram) {
  config_.workers.binary.clear();
  const std::string message(CheckConfigPaths(config_).message());
  EXPECT_THAT(message, HasSubstr("workers.binary (default): " + DefaultWorkerBinary()));
  EXPECT_EQ(fs::path(DefaultWorkerBinary()).filename(), "doze-worker");
  EXPECT_THAT(message, Not(HasSubstr("workers.binary: ")));
}

}  // namespace
}  // namespace doze::gateway
