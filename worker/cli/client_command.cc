// doze client: sends every line of a `doze generate` input file to a running worker at once and prints the
// same JSON lines as `doze generate`, in input order; or asks the worker for its health (--health) or Stats
// (--stats).
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "worker/cli/command.h"
#include "worker/cli/generation_result.h"
#include "worker/cli/sampling_flags.h"
#include "worker/service/proto_convert.h"
#include "worker/service/worker_client.h"

namespace doze::cli {
namespace {

using nlohmann::json;
using service::WorkerClient;

// Calls open at once; more lines wait for a free one.
constexpr int kMaxConcurrentCalls = 64;

// One line's outcome: the result, or the status the worker refused it with.
struct LineResult {
  GenerationResult result;
  grpc::Status status;
};

LineResult RunOne(WorkerClient& client, const GenerateRequest& request, int number,
                  std::optional<std::chrono::milliseconds> timeout) {
  v1::GenerateRequest call;
  call.set_request_id(std::to_string(number));
  service::PromptToProto(request.prompt, &call);
  service::SamplingParamsToProto(request.params, call.mutable_sampling());
  LineResult line;
  line.status = client.Generate(
      call,
      [&line](const v1::GenerateResponse& response) { line.result.Add(service::OutputFromProto(response)); },
      timeout);
  return line;
}

// Runs every request on a few threads, each taking the next line not yet sent.
std::vector<LineResult> RunAll(WorkerClient& client, const std::vector<GenerateRequest>& requests,
                               std::optional<std::chrono::milliseconds> timeout) {
  std::vector<LineResult> results(requests.size());
  std::atomic<size_t> next{0};
  const size_t num_threads = std::min<size_t>(requests.size(), kMaxConcurrentCalls);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < num_threads; ++t) {
    threads.emplace_back([&] {
      for (size_t i = next++; i < requests.size(); i = next++) {
        results[i] = RunOne(client, requests[i], static_cast<int>(i + 1), timeout);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  return results;
}

int PrintHealth(WorkerClient& client) {
  std::string status;
  grpc::Status call = client.Health(&status);
  if (!call.ok()) return Fail("health check failed: " + call.error_message());
  std::cout << status << std::endl;
  return status == "SERVING" ? 0 : 1;
}

int PrintStats(WorkerClient& client) {
  v1::StatsResponse stats;
  grpc::Status call = client.Stats(&stats);
  if (!call.ok()) return Fail("Stats failed: " + call.error_message());
  std::string text;
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(stats, &text, options);
  std::cout << text << std::endl;
  return 0;
}

json ErrorJson(const grpc::Status& status) {
  return {{"error", {{"code", static_cast<int>(status.error_code())}, {"message", status.error_message()}}}};
}

}  // namespace

int ClientCommand(int argc, char** argv) {
  po::options_description options("doze client");
  options.add_options()("target", po::value<std::string>()->required(), "the worker: unix:PATH or HOST:PORT")(
      "input", po::value<std::string>(), "JSON lines, each with prompt_ids, prompt or messages")(
      "health", po::bool_switch(), "print the worker's health status (exit 0 when SERVING)")(
      "stats", po::bool_switch(), "print the worker's Stats as JSON")(
      "timeout-ms", po::value<int>()->default_value(0), "deadline of each request (0: none)");
  AddSamplingOptions(options);
  po::variables_map vm;
  const char* usage =
      "doze client --target unix:PATH|HOST:PORT (--input FILE [sampling flags] | --health | --stats)";
  if (auto code = ParseOptions(argc, argv, options, vm, usage)) return *code;

  WorkerClient client(vm["target"].as<std::string>());
  if (vm["health"].as<bool>()) return PrintHealth(client);
  if (vm["stats"].as<bool>()) return PrintStats(client);
  if (!vm.count("input")) return Fail("give --input FILE, --health or --stats");
  auto defaults = SamplingParamsFromFlags(vm);
  if (!defaults.ok()) return Fail(std::string(defaults.status().message()));
  auto requests = ReadGenerateRequests(vm["input"].as<std::string>(), *defaults);
  if (!requests.ok()) return Fail(std::string(requests.status().message()));
  std::optional<std::chrono::milliseconds> timeout;
  if (vm["timeout-ms"].as<int>() > 0) timeout = std::chrono::milliseconds(vm["timeout-ms"].as<int>());

  int exit_code = 0;
  for (const LineResult& line : RunAll(client, *requests, timeout)) {
    json out = line.status.ok() ? line.result.ToJson() : ErrorJson(line.status);
    if (!line.status.ok()) exit_code = 1;
    std::cout << out.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
  }
  std::cout.flush();
  return exit_code;
}

}  // namespace doze::cli
