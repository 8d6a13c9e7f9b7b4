#include "worker/common/duration.h"

#include <gtest/gtest.h>

namespace doze {
namespace {

TEST(ParseConfigDurationTest, ReadsEveryUnit) {
  struct Case {
    const char* text;
    absl::Duration expected;
  };
  const Case cases[] = {
      {"0", absl::ZeroDuration()},
      {"0s", absl::ZeroDuration()},
      {"90s", absl::Seconds(90)},
      {"5m", absl::Minutes(5)},
      {"2h", absl::Hours(2)},
      {"7d", absl::Hours(7 * 24)},
      {"1d12h", absl::Hours(36)},
      {"0.6s", absl::Milliseconds(600)},
      {"250ms", absl::Milliseconds(250)},
      {"1.5d", absl::Hours(36)},
  };
  for (const Case& c : cases) {
    absl::StatusOr<absl::Duration> parsed = ParseConfigDuration(c.text);
    ASSERT_TRUE(parsed.ok()) << c.text << ": " << parsed.status();
    EXPECT_EQ(*parsed, c.expected) << c.text;
  }
}

TEST(ParseConfigDurationTest, RejectsMalformedText) {
  for (const char* text : {"", "5", "m", "-5m", "5 m", "5x", "d7", "5m-"}) {
    EXPECT_FALSE(ParseConfigDuration(text).ok()) << text;
  }
}

TEST(FormatConfigDurationTest, UsesDaysForWholeDays) {
  EXPECT_EQ(FormatConfigDuration(absl::Hours(168)), "7d");
  EXPECT_EQ(FormatConfigDuration(absl::Minutes(5)), "5m");
  EXPECT_EQ(FormatConfigDuration(absl::Milliseconds(600)), "600ms");
}

}  // namespace
}  // namespace doze
