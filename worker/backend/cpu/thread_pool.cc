#include "worker/backend/cpu/thread_pool.h"

#include <algorithm>

namespace doze {

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  workers_.reserve(num_threads - 1);
  for (int i = 0; i + 1 < num_threads; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  start_cv_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

void ThreadPool::ParallelFor(int64_t num_items, int64_t grain, const RangeFn& fn) {
  if (num_items <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  // One chunk, or no helpers: waking workers would only add latency.
  if (workers_.empty() || num_items <= grain) {
    for (int64_t begin = 0; begin < num_items; begin += grain) {
      fn(begin, std::min(begin + grain, num_items), num_threads() - 1);
    }
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    fn_ = &fn;
    num_items_ = num_items;
    grain_ = grain;
    next_item_.store(0, std::memory_order_relaxed);
    busy_workers_ = static_cast<int>(workers_.size());
    ++generation_;
  }
  start_cv_.notify_all();
  RunChunks(num_threads() - 1);
  std::unique_lock<std::mutex> lock(mutex_);
  done_cv_.wait(lock, [this] { return busy_workers_ == 0; });
  fn_ = nullptr;
}

void ThreadPool::WorkerLoop(int thread_index) {
  uint64_t seen_generation = 0;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      start_cv_.wait(lock, [&] { return stopping_ || generation_ != seen_generation; });
      if (stopping_) return;
      seen_generation = generation_;
    }
    RunChunks(thread_index);
    bool last;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      last = --busy_workers_ == 0;
    }
    if (last) done_cv_.notify_one();
  }
}

void ThreadPool::RunChunks(int thread_index) {
  while (true) {
    int64_t begin = next_item_.fetch_add(grain_, std::memory_order_relaxed);
    if (begin >= num_items_) return;
    (*fn_)(begin, std::min(begin + grain_, num_items_), thread_index);
  }
}

}  // namespace doze
