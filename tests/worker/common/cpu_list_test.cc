#include "worker/common/cpu_list.h"

#include <sched.h>

#include "gtest/gtest.h"

namespace doze {
namespace {

// The CPUs of a set, in order.
std::vector<int> Cpus(const cpu_set_t& set) {
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
  return cpus;
}

TEST(CpuListTest, NumbersAndRanges) {
  absl::StatusOr<cpu_set_t> set = ParseCpuList("2-4,7,10-10,0");
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(Cpus(*set), (std::vector<int>{0, 2, 3, 4, 7, 10}));
  set = ParseCpuList("5");
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(Cpus(*set), std::vector<int>{5});
}

TEST(CpuListTest, MalformedListsNameTheEntry) {
  for (const char* bad : {"", "a", "1,,2", "3-", "-3", "4-2", "1-2-3", "99999"}) {
    absl::StatusOr<cpu_set_t> set = ParseCpuList(bad);
    EXPECT_EQ(set.status().code(), absl::StatusCode::kInvalidArgument) << '"' << bad << '"';
  }
  EXPECT_NE(ParseCpuList("0,x7").status().message().find("\"x7\""), std::string::npos);
}

// Pinning to one CPU this thread may run on moves it there; the thread's mask is restored after.
TEST(CpuListTest, PinsTheCallingThread) {
  cpu_set_t allowed;
  ASSERT_EQ(sched_getaffinity(0, sizeof(allowed), &allowed), 0);
  const int cpu = Cpus(allowed).back();
  absl::StatusOr<cpu_set_t> one = ParseCpuList(std::to_string(cpu));
  ASSERT_TRUE(one.ok()) << one.status();
  ASSERT_TRUE(PinThisThread(*one).ok());
  EXPECT_EQ(sched_getcpu(), cpu);
  cpu_set_t now;
  ASSERT_EQ(sched_getaffinity(0, sizeof(now), &now), 0);
  EXPECT_EQ(Cpus(now), std::vector<int>{cpu});
  ASSERT_TRUE(PinThisThread(allowed).ok());
}

}  // namespace
}  // namespace doze
