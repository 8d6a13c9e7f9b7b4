#include "gateway/lifecycle/simulator.h"

#include <gtest/gtest.h>

#include <chrono>
#include <sstream>

#include "gateway/lifecycle/trace_synth.h"
#include "tests/gateway/lifecycle/policy_test_util.h"
#include "yaml-cpp/yaml.h"

namespace doze::lifecycle {
namespace {

// On demand, $2.50 per GPU-hour, cold start 0.6 s, decode 2,000 tokens/s, prefill 150,000 tokens/s.
constexpr const char* kOnDemand = R"yaml(
billing: { gpu_hour_price: 2.50 }
schedule: { timezone: UTC, idle_timeout: 5m }
functions: { fn: {} }
)yaml";

TEST(SimulatorTest, TinyTraceCostsWhatHandArithmeticSays) {
  // Two requests of 1,500 prompt + 2,000 completion tokens: 0.01 s + 1 s = 1.01 s of service each.
  std::istringstream csv(
      "timestamp,function,prompt_tokens,completion_tokens\n"
      "2025-03-03T10:00:00.000+00:00,fn,1500,2000\n"
      "2025-03-03T12:00:00.000+00:00,fn,1500,2000\n");
  absl::StatusOr<Trace> trace = ReadTraceCsv(csv);
  ASSERT_TRUE(trace.ok()) << trace.status();
  absl::StatusOr<LifecycleConfig> config = ParseLifecycleConfig(YAML::Load(kOnDemand));
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<SimulationResult> result = Simulate(*config, *trace);
  ASSERT_TRUE(result.ok()) << result.status();
  // Each request: 0.6 s warming, 1.01 s busy, then 300 s idle before the stop.
  const double gpu_s = 2 * (0.6 + 1.01 + 300);
  const CostSummary& s = result->functions.at("fn");
  EXPECT_NEAR(s.gpu_hours * 3600, gpu_s, 1e-3);
  EXPECT_NEAR(s.always_on_gpu_hours, 24, 1e-9);
  EXPECT_NEAR(s.cost, gpu_s / 3600 * 2.5, 1e-6);
  EXPECT_NEAR(s.always_on_cost, 60, 1e-9);
  EXPECT_NEAR(s.savings, 1 - gpu_s / 86400, 1e-9);
  EXPECT_EQ(s.cold_starts, 2);
  EXPECT_NEAR(s.cold_wait_p50_s, 0.6, 1e-9);
  EXPECT_NEAR(s.cold_wait_p95_s, 0.6, 1e-9);
  EXPECT_NEAR(s.utilization, 2 * 1.01 / gpu_s, 1e-9);
}

// The office trace under the default policy of config/doze.yaml meets the issue's targets.
TEST(SimulatorTest, OfficeTraceMeetsTheTargets) {
  SynthOptions synth;
  synth.seed = 1;
  absl::StatusOr<Trace> trace = SynthesizeTrace(synth);
  ASSERT_TRUE(trace.ok());
  std::stringstream csv;
  WriteTraceCsv(*trace, synth.zone, csv);
  const auto started = std::chrono::steady_clock::now();
  absl::StatusOr<Trace> read = ReadTraceCsv(csv);
  ASSERT_TRUE(read.ok()) << read.status();
  absl::StatusOr<LifecycleConfig> config =
      LoadLifecycleConfigFile("tests/gateway/lifecycle/testdata/office.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<SimulationResult> result = Simulate(*config, *read);
  ASSERT_TRUE(result.ok()) << result.status();
  const double elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::cout << SimulationResultToJson(*result).dump(1) << "\nrequests " << result->requests
            << ", read and replay " << elapsed_s << " s\n";
  EXPECT_GE(result->total.savings, 0.60);
  EXPECT_LE(result->total.cold_wait_p95_s, 1.0);
  EXPECT_LT(elapsed_s, 5.0);
  EXPECT_NEAR(result->total.always_on_gpu_hours, 3 * 30 * 24, 1e-6);
}

}  // namespace
}  // namespace doze::lifecycle
