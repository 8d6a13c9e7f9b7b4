#include "gateway/common/busy_poll.h"

#include <thread>

#include "gtest/gtest.h"

namespace doze::gateway {
namespace {

TEST(BusyPollTest, ZeroWindowNeverPolls) {
  BusyPoll poll(absl::ZeroDuration());
  EXPECT_FALSE(poll.enabled());
  poll.OnEvent();
  EXPECT_FALSE(poll.KeepPolling());
}

TEST(BusyPollTest, PollsOnlyWithinTheWindowAfterAnEvent) {
  BusyPoll poll(absl::Milliseconds(50));
  EXPECT_TRUE(poll.enabled());
  EXPECT_FALSE(poll.KeepPolling()) << "no event yet: the thread should block";
  poll.OnEvent();
  EXPECT_TRUE(poll.KeepPolling());
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  EXPECT_FALSE(poll.KeepPolling());
  poll.OnEvent();  // the next event opens the window again
  EXPECT_TRUE(poll.KeepPolling());
}

}  // namespace
}  // namespace doze::gateway
