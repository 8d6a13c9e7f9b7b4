// doze-fake-worker: a stand-in for doze-worker in the gateway's tests and benchmark. It takes doze-worker's
// flags, serves doze.v1.Worker and grpc.health.v1 on --listen, and answers Generate with max_tokens tokens
// ("t0 t1 ..."), one every DOZE_FAKE_TOKEN_DELAY_MS milliseconds (default 5). DOZE_FAKE_FAIL_START=1 makes it
// exit at once with an error, as a worker that cannot load its model does. DOZE_FAKE_CPUS=FIRST-LAST pins it
// to those cores (the benchmark keeps it off the gateway's).
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "proto/worker.grpc.pb.h"

namespace {

int EnvInt(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value == nullptr ? fallback : std::atoi(value);
}

double MillisSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

class FakeWorker final : public doze::v1::Worker::Service {
 public:
  FakeWorker(std::string function, int token_delay_ms)
      : function_(std::move(function)), delay_ms_(token_delay_ms) {}

  grpc::Status Generate(grpc::ServerContext* context, const doze::v1::GenerateRequest* request,
                        grpc::ServerWriter<doze::v1::GenerateResponse>* writer) override {
    auto start = std::chrono::steady_clock::now();
    if (sleeping_.load()) return grpc::Status(grpc::FAILED_PRECONDITION, "sleeping");
    num_requests_.fetch_add(1);
    num_running_.fetch_add(1);
    int max_tokens = request->sampling().has_max_tokens() ? request->sampling().max_tokens() : 16;
    int prompt_tokens = request->token_ids().ids_size();
    doze::v1::GenerateResponse response;
    double first_token_ms = 0;
    for (int i = 0; i < max_tokens; ++i) {
      if (delay_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_));
      if (context->IsCancelled()) {
        num_running_.fetch_sub(1);
        num_aborted_.fetch_add(1);
        return grpc::Status(grpc::CANCELLED, "cancelled by the client");
      }
      response.Clear();
      response.set_text_delta(absl::StrCat("t", i, " "));
      response.add_token_ids(1000 + i);
      generated_tokens_.fetch_add(1);
      if (i == 0) first_token_ms = MillisSince(start);
      if (i + 1 == max_tokens) {
        response.set_finish_reason(doze::v1::FINISH_REASON_LENGTH);
        response.mutable_usage()->set_prompt_tokens(prompt_tokens);
        response.mutable_usage()->set_completion_tokens(max_tokens);
        response.mutable_timings()->set_total_ms(MillisSince(start));
        response.mutable_timings()->set_time_to_first_token_ms(first_token_ms);
      }
      if (!writer->Write(response)) break;
    }
    num_running_.fetch_sub(1);
    return grpc::Status::OK;
  }

  grpc::Status Stats(grpc::ServerContext*, const doze::v1::StatsRequest*,
                     doze::v1::StatsResponse* response) override {
    response->set_function(function_);
    response->set_backend("fake");
    response->set_state(sleeping_.load() ? doze::v1::WORKER_STATE_SLEEPING : doze::v1::WORKER_STATE_SERVING);
    response->mutable_counters()->set_num_running(num_running_.load());
    response->mutable_counters()->set_num_requests(num_requests_.load());
    response->mutable_counters()->set_generated_tokens(generated_tokens_.load());
    // The fake's aborted calls, reported where a real worker reports preemptions (tests read it).
    response->mutable_counters()->set_num_preemptions(num_aborted_.load());
    return grpc::Status::OK;
  }

  grpc::Status Sleep(grpc::ServerContext*, const doze::v1::SleepRequest*, doze::v1::SleepResponse*) override {
    sleeping_.store(true);
    return grpc::Status::OK;
  }

  grpc::Status Wake(grpc::ServerContext*, const doze::v1::WakeRequest*, doze::v1::WakeResponse*) override {
    sleeping_.store(false);
    return grpc::Status::OK;
  }

  grpc::Status Drain(grpc::ServerContext*, const doze::v1::DrainRequest*, doze::v1::DrainResponse*) override {
    return grpc::Status::OK;
  }

 private:
  const std::string function_;
  const int delay_ms_;
  std::atomic<bool> sleeping_{false};
  std::atomic<int> num_running_{0};
  std::atomic<int64_t> num_requests_{0};
  std::atomic<int64_t> generated_tokens_{0};
  std::atomic<int64_t> num_aborted_{0};
};

}  // namespace

// Pins the process to the cores "FIRST-LAST" of DOZE_FAKE_CPUS, when set.
void PinFromEnvironment() {
  const char* cpus = std::getenv("DOZE_FAKE_CPUS");
  if (cpus == nullptr) return;
  int first = 0, last = 0;
  if (std::sscanf(cpus, "%d-%d", &first, &last) != 2) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int cpu = first; cpu <= last; ++cpu) CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof(set), &set);
}

int main(int argc, char** argv) {
  PinFromEnvironment();
  std::string function, listen;
  for (int i = 1; i + 1 < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--function")
      function = argv[++i];
    else if (flag == "--listen")
      listen = argv[++i];
  }
  if (EnvInt("DOZE_FAKE_FAIL_START", 0) != 0) {
    std::cerr << "error: cannot load the model (DOZE_FAKE_FAIL_START)" << std::endl;
    return 3;
  }
  if (function.empty() || listen.empty()) {
    std::cerr << "usage: doze-fake-worker --function NAME --listen ADDRESS" << std::endl;
    return 2;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(EnvInt("DOZE_FAKE_START_DELAY_MS", 0)));
  grpc::EnableDefaultHealthCheckService(true);
  FakeWorker service(function, EnvInt("DOZE_FAKE_TOKEN_DELAY_MS", 5));
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    std::cerr << "error: cannot listen on " << listen << std::endl;
    return 1;
  }
  std::cout << "{\"event\":\"ready\",\"function\":\"" << function << "\"}" << std::endl;
  server->Wait();
  return 0;
}
