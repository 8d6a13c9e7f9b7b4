// doze simulate: replays a trace through the lifecycle policy on a virtual clock and prints what it cost.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "gateway/config/config_loader.h"
#include "gateway/lifecycle/lifecycle_config.h"
#include "gateway/lifecycle/policy_comparison.h"
#include "gateway/lifecycle/simulator.h"
#include "worker/cli/command.h"
#include "worker/cli/options.h"
#include "yaml-cpp/yaml.h"

namespace doze::cli {
namespace {

// Sets the dotted `KEY` of `root` to the YAML `VALUE` of "KEY=VALUE" (e.g. schedule.idle_action=sleep).
absl::Status ApplyOverride(YAML::Node root, const std::string& assignment) {
  const size_t equals = assignment.find('=');
  if (equals == std::string::npos || equals == 0) {
    return absl::InvalidArgumentError(absl::StrCat("--policy-override ", assignment, ": expected KEY=VALUE"));
  }
  std::vector<std::string> keys = absl::StrSplit(assignment.substr(0, equals), '.');
  YAML::Node value;
  try {
    value = YAML::Load(assignment.substr(equals + 1));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("--policy-override ", assignment, ": ", e.msg));
  }
  YAML::Node node = root;
  for (size_t i = 0; i + 1 < keys.size(); ++i) {
    if (!node[keys[i]] || !node[keys[i]].IsMap()) node[keys[i]] = YAML::Node(YAML::NodeType::Map);
    node.reset(node[keys[i]]);  // Rebinds; `node = ...` would overwrite the parent's value.
  }
  node[keys.back()] = value;
  return absl::OkStatus();
}

void PrintTable(const std::vector<lifecycle::ComparedPolicy>& rows) {
  std::printf("%-10s %10s %10s %10s %8s %11s %9s %9s %11s\n", "policy", "gpu_hours", "cost", "always_on",
              "savings", "cold_starts", "wait_p50", "wait_p95", "utilization");
  for (const auto& [name, result] : rows) {
    const lifecycle::CostSummary& s = result.total;
    std::printf("%-10s %10.1f %10.2f %10.2f %8.3f %11lld %8.3fs %8.3fs %11.3f\n", name.c_str(), s.gpu_hours,
                s.cost, s.always_on_cost, s.savings, static_cast<long long>(s.cold_starts), s.cold_wait_p50_s,
                s.cold_wait_p95_s, s.utilization);
  }
}

}  // namespace

int SimulateCommand(int argc, char** argv) {
  po::options_description options("doze simulate");
  options.add_options()("config", po::value<std::string>()->required(),
                        "the gateway's YAML (config/doze.yaml)")(
      "trace", po::value<std::string>()->required(), "a CSV trace (doze trace synth)")(
      "policy-override", po::value<std::vector<std::string>>()->composing(),
      "KEY=VALUE over the config, repeatable")(
      "compare", po::bool_switch(), "print always-on, on-demand and the config's policy side by side");
  po::variables_map vm;
  if (auto code = ParseOptions(argc, argv, options, vm, "doze simulate --config FILE --trace FILE"))
    return *code;
  const auto started = std::chrono::steady_clock::now();
  YAML::Node root;
  try {
    root = YAML::LoadFile(vm["config"].as<std::string>());
  } catch (const YAML::Exception& e) {
    return Fail(absl::StrCat(vm["config"].as<std::string>(), ": ", e.what()));
  }
  if (vm.count("policy-override")) {
    for (const std::string& assignment : vm["policy-override"].as<std::vector<std::string>>()) {
      if (absl::Status status = ApplyOverride(root, assignment); !status.ok()) return Fail(status.ToString());
    }
  }
  // The whole file as the gateway reads it: a misspelt key (billing as "biling") or an override that names
  // no key would otherwise leave the defaults in place unseen.
  absl::StatusOr<gateway::Config> checked = gateway::ParseConfig(YAML::Dump(root));
  if (!checked.ok())
    return Fail(absl::StrCat(vm["config"].as<std::string>(), ": ", checked.status().message()));
  std::ifstream trace_file(vm["trace"].as<std::string>());
  if (!trace_file) return Fail(absl::StrCat("cannot read ", vm["trace"].as<std::string>()));
  absl::StatusOr<lifecycle::Trace> trace = lifecycle::ReadTraceCsv(trace_file);
  if (!trace.ok()) return Fail(std::string(trace.status().message()));
  std::vector<lifecycle::ComparedPolicy> results;
  if (vm["compare"].as<bool>()) {
    absl::StatusOr<std::vector<lifecycle::ComparedPolicy>> rows = lifecycle::ComparePolicies(root, *trace);
    if (!rows.ok()) return Fail(std::string(rows.status().message()));
    results = *std::move(rows);
    PrintTable(results);
  } else {
    absl::StatusOr<lifecycle::SimulationResult> result = lifecycle::Simulate(checked->lifecycle, *trace);
    if (!result.ok()) return Fail(absl::StrCat("config: ", result.status().message()));
    results.push_back({"config", *std::move(result)});
    std::cout << lifecycle::SimulationResultToJson(results.front().result).dump(2) << std::endl;
  }
  const double elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::fprintf(stderr, "doze simulate: %lld requests, %zu polic%s, %.2f s\n",
               static_cast<long long>(results.front().result.requests), results.size(),
               results.size() == 1 ? "y" : "ies", elapsed_s);
  return 0;
}

}  // namespace doze::cli
