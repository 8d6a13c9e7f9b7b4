#include "worker/common/proc_stat.h"

#include <unistd.h>

#include <chrono>
#include <string>

#include "gtest/gtest.h"

namespace doze {
namespace {

// proc(5): field 3 is the state (one letter), field 5 the process group, field 22 the start time.
TEST(ProcStatTest, FieldsStartAfterTheCommandName) {
  absl::StatusOr<std::vector<std::string>> self = ProcStatFields(0);
  ASSERT_TRUE(self.ok()) << self.status();
  ASSERT_GT(self->size(), 22u - 3);
  EXPECT_EQ((*self)[0], "R");  // this thread is running while it reads
  EXPECT_EQ((*self)[5 - 3], std::to_string(getpgrp()));
  absl::StatusOr<std::vector<std::string>> by_pid = ProcStatFields(getpid());
  ASSERT_TRUE(by_pid.ok()) << by_pid.status();
  EXPECT_EQ((*by_pid)[22 - 3], (*self)[22 - 3]);
}

TEST(ProcStatTest, CpuSecondsGrowWithWork) {
  absl::StatusOr<double> before = ProcessCpuSeconds(getpid());
  ASSERT_TRUE(before.ok()) << before.status();
  const auto start = std::chrono::steady_clock::now();
  volatile double sink = 0;
  while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(300)) sink = sink + 1;
  absl::StatusOr<double> after = ProcessCpuSeconds(getpid());
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_GE(*after - *before, 0.1);  // 0.3 s of spinning, counted in clock ticks
}

TEST(ProcStatTest, MissingProcessIsAnError) {
  EXPECT_FALSE(ProcStatFields(-5).ok());
  EXPECT_FALSE(ProcessCpuSeconds(-5).ok());
}

}  // namespace
}  // namespace doze
