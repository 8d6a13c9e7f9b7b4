#include "worker/common/percentile.h"

#include "gtest/gtest.h"

namespace doze {
namespace {

// Nearest rank: the smallest value with at least p% of the sample at or below it.
TEST(PercentileTest, NearestRank) {
  const std::vector<double> values = {5, 1, 4, 2, 3};
  EXPECT_EQ(Percentile(values, 50), 3);
  EXPECT_EQ(Percentile(values, 40), 2);
  EXPECT_EQ(Percentile(values, 41), 3);
  EXPECT_EQ(Percentile(values, 99), 5);
  EXPECT_EQ(Percentile(values, 0), 1);
  EXPECT_EQ(Percentile({}, 50), 0);
}

}  // namespace
}  // namespace doze
