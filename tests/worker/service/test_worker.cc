#include "tests/worker/service/test_worker.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>

namespace doze::service::testing {
namespace {

std::string Env(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : fallback;
}

}  // namespace

v1::GenerateRequest TextRequest(const std::string& text, int max_tokens) {
  v1::GenerateRequest request;
  request.set_text(text);
  request.mutable_sampling()->set_temperature(0.0f);
  request.mutable_sampling()->set_max_tokens(max_tokens);
  request.mutable_sampling()->set_ignore_eos(true);
  return request;
}

std::string TestWorker::ModelDir() { return Env("DOZE_BUILD_DIR", "build") + "/models/tiny-tied-gqa2"; }

std::string TestWorker::Binary(const std::string& name) {
  return Env("DOZE_BUILD_DIR", "build") + "/bin/" + name;
}

TestWorker::TestWorker(const std::vector<std::string>& extra_args) {
  // Under /tmp: a unix socket path must stay under 108 bytes, which a deep build tree may not.
  char dir[] = "/tmp/doze-worker-test-XXXXXX";
  EXPECT_NE(mkdtemp(dir), nullptr);
  dir_ = dir;
  target_ = "unix:" + dir_ + "/worker.sock";
  std::vector<std::string> argv = {Binary("doze-worker"),
                                   "--model",
                                   ModelDir(),
                                   "--function",
                                   "test",
                                   "--listen",
                                   target_,
                                   "--backend",
                                   "cpu",
                                   "--threads",
                                   "2",
                                   "--kv-cache-tokens",
                                   "65536"};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  absl::StatusOr<ChildWorker> child = ChildWorker::Spawn(argv);
  EXPECT_TRUE(child.ok()) << child.status();
  if (child.ok()) child_ = std::make_unique<ChildWorker>(*std::move(child));
  client_ = std::make_unique<WorkerClient>(target_);
}

TestWorker::~TestWorker() {
  child_.reset();  // kills a worker still running
  std::filesystem::remove_all(dir_);
}

void TestWorker::WaitReady() {
  ASSERT_NE(child_, nullptr);
  absl::StatusOr<std::string> line = child_->ReadLine(std::chrono::seconds(60));
  ASSERT_TRUE(line.ok()) << line.status();
  ASSERT_NE(line->find("\"ready\""), std::string::npos) << *line;
}

}  // namespace doze::service::testing
