#include "worker/backend/cpu/thread_pool.h"

#include <atomic>
#include <vector>

#include "gtest/gtest.h"

namespace doze {
namespace {

TEST(ThreadPoolTest, EveryItemRunsExactlyOnce) {
  for (int num_threads : {1, 2, 3, 5}) {
    ThreadPool pool(num_threads);
    EXPECT_EQ(pool.num_threads(), num_threads);
    for (int64_t num_items : {1, 2, 7, 64, 1001}) {
      for (int64_t grain : {1, 3, 16, 5000}) {
        std::vector<std::atomic<int>> hits(num_items);
        std::atomic<bool> bad_thread{false};
        pool.ParallelFor(num_items, grain, [&](int64_t begin, int64_t end, int thread) {
          if (thread < 0 || thread >= num_threads || end - begin > grain) bad_thread = true;
          for (int64_t i = begin; i < end; ++i) hits[i].fetch_add(1);
        });
        EXPECT_FALSE(bad_thread);
        for (int64_t i = 0; i < num_items; ++i) ASSERT_EQ(hits[i].load(), 1) << "item " << i;
      }
    }
  }
}

TEST(ThreadPoolTest, ManyShortLoopsInARow) {
  ThreadPool pool(3);
  std::atomic<int64_t> total{0};
  for (int loop = 0; loop < 2000; ++loop) {
    pool.ParallelFor(10, 1, [&](int64_t begin, int64_t end, int) { total += end - begin; });
  }
  EXPECT_EQ(total.load(), 20000);
}

TEST(ThreadPoolTest, EmptyLoopCallsNothing) {
  ThreadPool pool(2);
  bool called = false;
  pool.ParallelFor(0, 1, [&](int64_t, int64_t, int) { called = true; });
  EXPECT_FALSE(called);
}

TEST(ThreadPoolTest, DefaultIsHardwareConcurrency) {
  ThreadPool pool(0);
  EXPECT_GE(pool.num_threads(), 1);
}

}  // namespace
}  // namespace doze
