// doze bench-cold: starts doze-worker as a new process again and again and measures how soon it serves: spawn
// to SERVING, spawn to the first token of a 32-token prompt, then Sleep, Wake and wake to first token. The
// page cache is warmed first (the figures are about the process, not the disk).
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "worker/cli/command.h"
#include "worker/cli/options.h"
#include "worker/service/child_worker.h"
#include "worker/service/worker_client.h"

namespace doze::cli {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;
using service::ChildWorker;
using service::WorkerClient;

constexpr auto kStartTimeout = std::chrono::seconds(120);
constexpr auto kExitTimeout = std::chrono::seconds(60);
constexpr const char* kFigureNames[] = {"spawn_to_serving_ms", "spawn_to_first_token_ms", "sleep_ms",
                                        "wake_ms", "wake_to_first_token_ms"};
constexpr int kNumFigures = 5;

struct BenchConfig {
  std::vector<std::string> worker_argv;  // without --listen
  int prompt_tokens = 32;
  std::string work_dir;
};

// One run's figures in kFigureNames' order, and the worker's own start-up timeline.
struct RunFigures {
  double ms[kNumFigures] = {};
  json startup;
};

double MillisSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Reads every file of `dir` once, so that the runs find the checkpoint in the page cache.
void WarmPageCache(const std::string& dir) {
  std::vector<char> buffer(size_t{1} << 20);
  std::error_code error;  // unreadable: the runs read it cold
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    while (in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()))) {
    }
  }
}

// Greedy, a few tokens, the prompt given as ids so that the tokenizer plays no part.
v1::GenerateRequest BenchRequest(int prompt_tokens) {
  v1::GenerateRequest request;
  // Ids from 1,000 in steps of 7, wrapping within the first 100,000 (inside any Qwen2 vocabulary).
  for (int i = 0; i < prompt_tokens; ++i) request.mutable_token_ids()->add_ids(1000 + (7 * i) % 99000);
  request.mutable_sampling()->set_temperature(0.0f);
  request.mutable_sampling()->set_max_tokens(4);
  request.mutable_sampling()->set_ignore_eos(true);
  return request;
}

// Runs the request to its end; returns the milliseconds from `start` to the first token.
absl::StatusOr<double> FirstTokenMs(WorkerClient& client, const v1::GenerateRequest& request,
                                    Clock::time_point start) {
  double first = -1.0;
  grpc::Status status = client.Generate(request, [&](const v1::GenerateResponse& response) {
    if (first < 0 && response.token_ids_size() > 0) first = MillisSince(start);
  });
  if (!status.ok()) return absl::InternalError(absl::StrCat("Generate: ", status.error_message()));
  if (first < 0) return absl::InternalError("Generate returned no token");
  return first;
}

absl::StatusOr<RunFigures> RunOnce(const BenchConfig& config, int run) {
  const std::string socket = absl::StrCat(config.work_dir, "/worker-", run, ".sock");
  std::vector<std::string> argv = config.worker_argv;
  argv.push_back("--listen");
  argv.push_back("unix:" + socket);
  RunFigures figures;
  const Clock::time_point spawn = Clock::now();
  absl::StatusOr<ChildWorker> child = ChildWorker::Spawn(argv, config.work_dir + "/worker.log");
  if (!child.ok()) return child.status();
  absl::StatusOr<std::string> ready = child->ReadLine(kStartTimeout);
  if (!ready.ok()) return ready.status();
  figures.ms[0] = MillisSince(spawn);
  figures.startup = json::parse(*ready, nullptr, false).value("startup_ms", json::object());

  WorkerClient client("unix:" + socket);
  const v1::GenerateRequest request = BenchRequest(config.prompt_tokens);
  absl::StatusOr<double> first = FirstTokenMs(client, request, spawn);
  if (!first.ok()) return first.status();
  figures.ms[1] = *first;

  Clock::time_point start = Clock::now();
  v1::SleepResponse slept;
  if (grpc::Status s = client.Sleep(&slept); !s.ok())
    return absl::InternalError("Sleep: " + s.error_message());
  figures.ms[2] = MillisSince(start);
  start = Clock::now();
  v1::WakeResponse woke;
  if (grpc::Status s = client.Wake(&woke); !s.ok()) return absl::InternalError("Wake: " + s.error_message());
  figures.ms[3] = MillisSince(start);
  absl::StatusOr<double> after_wake = FirstTokenMs(client, request, start);
  if (!after_wake.ok()) return after_wake.status();
  figures.ms[4] = *after_wake;

  v1::DrainResponse drained;
  if (grpc::Status s = client.Drain(&drained); !s.ok())
    return absl::InternalError("Drain: " + s.error_message());
  absl::StatusOr<int> code = child->Wait(kExitTimeout);
  if (!code.ok()) return code.status();
  if (*code != 0) return absl::InternalError(absl::StrCat("the worker exited with status ", *code));
  return figures;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

json Report(const std::vector<RunFigures>& runs) {
  json report = json::object();
  for (int f = 0; f < kNumFigures; ++f) {
    std::vector<double> values;
    for (const RunFigures& run : runs) values.push_back(run.ms[f]);
    report[kFigureNames[f]] = {{"median", Median(values)},
                               {"max", *std::max_element(values.begin(), values.end())}};
  }
  json startup = json::object();
  for (const auto& [stage, value] : runs.front().startup.items()) {
    std::vector<double> values;
    for (const RunFigures& run : runs) values.push_back(run.startup.value(stage, 0.0));
    startup[stage] = Median(values);
  }
  report["worker_startup_median_ms"] = startup;
  return report;
}

void PrintTable(const json& report) {
  std::printf("%-26s %10s %10s\n", "figure", "median ms", "max ms");
  for (const char* name : kFigureNames) {
    std::printf("%-26s %10.1f %10.1f\n", name, report[name]["median"].get<double>(),
                report[name]["max"].get<double>());
  }
}

std::string WorkerBeside(const char* argv0) {
  std::error_code error;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
  if (error) self = argv0;
  return (self.parent_path() / "doze-worker").string();
}

}  // namespace

int BenchColdCommand(int argc, char** argv) {
  po::options_description options("doze bench-cold");
  options.add_options()("model", po::value<std::string>()->required(), "Hugging Face model directory")(
      "backend", po::value<std::string>()->default_value("auto"), "auto | cpu | cuda")(
      "runs", po::value<int>()->default_value(10), "measured runs (after one unmeasured)")(
      "prompt-tokens", po::value<int>()->default_value(32), "prompt length of the first request")(
      "worker", po::value<std::string>(), "the doze-worker binary (default: beside doze)")(
      "kv-cache-tokens", po::value<int>()->default_value(0),
      "KV cache size in tokens (0: the backend's default)")("gpu-memory-fraction",
                                                            po::value<double>()->default_value(0.9, "0.9"),
                                                            "CUDA: share of GPU memory to use")(
      "threads", po::value<int>()->default_value(0), "CPU backend threads (0: every core)");
  po::variables_map vm;
  const char* usage = "doze bench-cold --model DIR [--backend cuda|cpu] [--runs 10]";
  if (auto code = ParseOptions(argc, argv, options, vm, usage)) return *code;
  const int runs = vm["runs"].as<int>();
  if (runs < 1) return Fail("--runs: must be at least 1");

  BenchConfig config;
  config.prompt_tokens = vm["prompt-tokens"].as<int>();
  if (config.prompt_tokens < 1) return Fail("--prompt-tokens: must be at least 1");
  const std::string model = vm["model"].as<std::string>();
  std::error_code is_dir_error;
  if (!std::filesystem::is_directory(model, is_dir_error))
    return Fail(absl::StrCat("--model: ", model, " is not a directory"));
  config.worker_argv = {vm.count("worker") ? vm["worker"].as<std::string>() : WorkerBeside(argv[0]),
                        "--model",
                        model,
                        "--function",
                        "bench-cold",
                        "--backend",
                        vm["backend"].as<std::string>(),
                        "--kv-cache-tokens",
                        std::to_string(vm["kv-cache-tokens"].as<int>()),
                        "--gpu-memory-fraction",
                        std::to_string(vm["gpu-memory-fraction"].as<double>()),
                        "--threads",
                        std::to_string(vm["threads"].as<int>())};
  char work_dir[] = "/tmp/doze-bench-cold-XXXXXX";
  if (mkdtemp(work_dir) == nullptr) return Fail("cannot make a temporary directory");
  config.work_dir = work_dir;

  WarmPageCache(model);
  std::vector<RunFigures> figures;
  for (int run = 0; run <= runs; ++run) {
    absl::StatusOr<RunFigures> one = RunOnce(config, run);
    if (!one.ok())
      return Fail(absl::StrCat("run ", run, ": ", one.status().message(), " (worker log: ", work_dir,
                               "/worker.log)"));
    if (run > 0) figures.push_back(*std::move(one));  // run 0 warms up the page cache and the driver
  }
  json report = Report(figures);
  report["runs"] = runs;
  report["model"] = model;
  report["backend"] = vm["backend"].as<std::string>();
  PrintTable(report);
  std::cout << report.dump() << std::endl;
  std::filesystem::remove_all(work_dir);
  return 0;
}

}  // namespace doze::cli
