// Helpers for model tests: a scratch directory per test and small hand-built checkpoints.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "worker/common/file_util.h"

namespace doze {

// A fresh directory under the test temp dir, named after the running test and removed with the object.
class ScratchDir {
 public:
  ScratchDir() {
    const testing::TestInfo* info = testing::UnitTest::GetInstance()->current_test_info();
    static int count = 0;  // tells apart several directories of one test
    std::string name =
        absl::StrCat(info->test_suite_name(), "_", info->name(), "_", ::getpid(), "_", count++);
    for (char& c : name) {
      if (c == '/') c = '_';  // parameterised test names contain slashes
    }
    path_ = absl::StrCat(testing::TempDir(), "/doze_model_", name);
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() { std::filesystem::remove_all(path_); }

  const std::string& path() const { return path_; }
  // The path of `file` inside the directory.
  std::string operator/(const std::string& file) const { return path_ + "/" + file; }
  // Writes `contents` to `file` inside the directory.
  void Write(const std::string& file, const std::string& contents) const {
    ASSERT_TRUE(WriteStringToFile(*this / file, contents).ok()) << file;
  }

 private:
  std::string path_;
};

// config.json of a tiny Qwen2 model: hidden 8, 2 heads of 4, 1 kv head, intermediate 16, vocab 10, 1 layer.
inline std::string TinyConfigJson(bool tied, const std::string& dtype = "bfloat16") {
  return absl::StrCat(R"({"architectures": ["Qwen2ForCausalLM"], "hidden_size": 8, "intermediate_size": 16,
    "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 10,
    "rope_theta": 1000000.0, "rms_norm_eps": 1e-06, "max_position_embeddings": 64, "torch_dtype": ")",
                      dtype, R"(", "bos_token_id": 1, "eos_token_id": [2, 3], "tie_word_embeddings": )",
                      tied ? "true" : "false", "}");
}

}  // namespace doze
