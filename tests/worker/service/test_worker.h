// A doze-worker child process on a unix socket in a fresh temporary directory, with the tiny CPU checkpoint.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "proto/worker.pb.h"
#include "worker/service/child_worker.h"
#include "worker/service/worker_client.h"

namespace doze::service::testing {

// Long enough that a call is still running when a test acts on it (one token per step, steps of a fraction of
// a millisecond), short enough for the 32k-token context.
inline constexpr int kLongMaxTokens = 30000;

// A greedy request for `text` that ignores end-of-sequence and stops after `max_tokens` tokens.
v1::GenerateRequest TextRequest(const std::string& text, int max_tokens);

class TestWorker {
 public:
  // Starts the worker; `extra_args` are appended to its command line. Does not wait for it.
  explicit TestWorker(const std::vector<std::string>& extra_args = {});
  ~TestWorker();

  // Waits for the ready line (the worker is SERVING); fails the test on timeout.
  void WaitReady();
  const std::string& target() const { return target_; }
  WorkerClient& client() { return *client_; }
  ChildWorker& process() { return *child_; }
  // The model directory the worker serves.
  static std::string ModelDir();
  // build/bin/<name>.
  static std::string Binary(const std::string& name);

 private:
  std::string dir_;
  std::string target_;
  std::unique_ptr<ChildWorker> child_;
  std::unique_ptr<WorkerClient> client_;
};

// A fixture whose tests share one worker, started once for the suite.
class SharedWorkerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    worker_ = new TestWorker();
    worker_->WaitReady();
  }
  static void TearDownTestSuite() {
    delete worker_;
    worker_ = nullptr;
  }
  static WorkerClient& client() { return worker_->client(); }
  static const std::string& target() { return worker_->target(); }

 private:
  static inline TestWorker* worker_ = nullptr;
};

}  // namespace doze::service::testing
