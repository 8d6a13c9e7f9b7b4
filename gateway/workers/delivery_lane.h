// A thread that runs posted work in order: where a completion thread hands part of a worker message's events,
// so that the clients' sockets of one burst are written on two cores at once.
#pragma once

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

 private:
  boost::asio::io_context context_{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  std::thread thread_;  // last: it starts once the members it uses exist
};

}  // namespace doze::gateway
