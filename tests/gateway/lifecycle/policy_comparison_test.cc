#include "gateway/lifecycle/policy_comparison.h"

#include <gtest/gtest.h>

#include "absl/time/civil_time.h"
#include "gateway/lifecycle/trace_synth.h"
#include "yaml-cpp/yaml.h"

namespace doze::lifecycle {
namespace {

// Always-on would have cost the same whatever policy is compared with it: every row prices the same period,
// the office's local days from the first request's to the last's, for each of the three functions. The
// office trace's first request comes at 00:22 Shanghai time, on the previous day in UTC, so a period
// placed in a different time zone for one row shows up as an extra day.
TEST(PolicyComparisonTest, EveryPolicyPricesTheSamePeriod) {
  SynthOptions synth;
  synth.days = 3;
  absl::StatusOr<Trace> trace = SynthesizeTrace(synth);
  ASSERT_TRUE(trace.ok()) << trace.status();
  ASSERT_FALSE(trace->requests.empty());
  const absl::TimeZone shanghai = absl::FixedTimeZone(8 * 3600);
  const absl::CivilDay first_day = absl::ToCivilDay(trace->requests.front().at, shanghai);
  const absl::CivilDay last_day = absl::ToCivilDay(trace->requests.back().at, shanghai);
  ASSERT_NE(first_day, absl::ToCivilDay(trace->requests.front().at, absl::UTCTimeZone()));
  const double always_on_hours = 3.0 * 24 * (last_day - first_day + 1);

  YAML::Node root = YAML::LoadFile("tests/gateway/lifecycle/testdata/office.yaml");
  absl::StatusOr<std::vector<ComparedPolicy>> rows = ComparePolicies(root, *trace);
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 3u);
  for (const ComparedPolicy& row : *rows) {
    EXPECT_NEAR(row.result.total.always_on_gpu_hours, always_on_hours, 1e-6) << row.name;
    EXPECT_NEAR(row.result.total.always_on_cost, always_on_hours * 2.50, 1e-6) << row.name;
    EXPECT_NEAR(row.result.total.savings, 1 - row.result.total.gpu_hours / always_on_hours, 1e-9) << row.name;
    for (const auto& [name, summary] : row.result.functions) {
      EXPECT_NEAR(summary.always_on_gpu_hours, always_on_hours / 3, 1e-6) << row.name << " " << name;
    }
  }
  EXPECT_EQ((*rows)[0].name, "always-on");
  EXPECT_NEAR((*rows)[0].result.total.savings, 0, 1e-9);
}

}  // namespace
}  // namespace doze::lifecycle
