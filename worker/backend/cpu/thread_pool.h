// A small persistent pool of worker threads for the CPU backend's data-parallel loops.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace doze {

// Runs one parallel loop at a time over a fixed set of threads created once: a decode step issues a few
// hundred loops, so creating threads per loop would cost more than the work. The calling thread takes part in
// every loop. Work is handed out in chunks from a shared counter, so a thread descheduled by a busy machine
// delays only the chunk it holds. Not reentrant: call ParallelFor from one thread at a time.
class ThreadPool {
 public:
  // fn(begin, end, thread_index): processes items [begin, end); thread_index < num_threads() names a scratch
  // slot.
  using RangeFn = std::function<void(int64_t, int64_t, int)>;

  // Starts num_threads - 1 workers (the caller is the last thread); num_threads <= 0 means hardware
  // concurrency.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Threads that take part in a loop, the caller included.
  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn over [0, num_items) in chunks of `grain` items (the last may be shorter) and returns when all
  // are done.
  void ParallelFor(int64_t num_items, int64_t grain, const RangeFn& fn);

 private:
  void WorkerLoop(int thread_index);
  // Claims chunks of the current loop until none are left.
  void RunChunks(int thread_index);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable start_cv_;
  std::condition_variable done_cv_;
  uint64_t generation_ = 0;  // bumped per loop; guarded by mutex_
  bool stopping_ = false;    // guarded by mutex_
  int busy_workers_ = 0;     // workers still inside the current loop; guarded by mutex_

  const RangeFn* fn_ = nullptr;
  int64_t num_items_ = 0;
  int64_t grain_ = 1;
  std::atomic<int64_t> next_item_{0};
};

}  // namespace doze
