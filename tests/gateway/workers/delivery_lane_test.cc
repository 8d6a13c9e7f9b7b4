// DeliveryLane: posted work runs in order on the lane's thread, and the lane is idle exactly when all of it
// has run.
#include "gateway/workers/delivery_lane.h"

#include <chrono>
#include <future>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace doze::gateway {
namespace {

TEST(DeliveryLaneTest, IsIdleOnlyOnceEverythingPostedHasRun) {
  DeliveryLane lane;
  EXPECT_TRUE(lane.idle());
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::vector<int> order;  // written on the lane's thread, read here once it is idle
  lane.Post([released, &order] {
    released.wait();
    order.push_back(1);
  });
  lane.Post([&order] { order.push_back(2); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(lane.idle());  // the first still waits
  release.set_value();
  for (int i = 0; i < 1000 && !lane.idle(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_TRUE(lane.idle());
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
}

}  // namespace
}  // namespace doze::gateway
