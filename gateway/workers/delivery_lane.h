// A thread that runs posted work in order: where a completion thread hands part of a worker message's events,
// so that the clients' sockets of one burst are written on two cores at once.
#pragma once

#include <atomic>
#include <functional>
#include <thread>

#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/io_context.hpp"

namespace doze::gateway {

class DeliveryLane {
 public:
  DeliveryLane();
  // Runs what was posted before, then ends the thread.
  ~DeliveryLane();

  // Runs `work` on the lane's thread after everything posted before it.
  void Post(std::function<void()> work);
  // Whether everything posted has run (its effects visible to the caller). With one thread posting, a lane
  // that it finds idle stays idle until it posts again: work it then runs itself cannot overtake the lane's.
  bool idle() const { return pending_.load(std::memory_order_acquire) == 0; }

 private:
  std::atomic<int> pending_{0};  // posted and not yet run to its end
  boost::asio::io_context context_{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  std::thread thread_;  // last: it starts once the members it uses exist
};

}  // namespace doze::gateway
