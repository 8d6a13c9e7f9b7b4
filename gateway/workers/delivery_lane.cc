#include "gateway/workers/delivery_lane.h"

#include <pthread.h>

#include <utility>

#include "boost/asio/post.hpp"

namespace doze::gateway {

DeliveryLane::DeliveryLane()
    : guard_(boost::asio::make_work_guard(context_)), thread_([this] { context_.run(); }) {
  pthread_setname_np(thread_.native_handle(), "doze-deliver");
}

DeliveryLane::~DeliveryLane() {
  guard_.reset();
  thread_.join();
}

void DeliveryLane::Post(std::function<void()> work) {
  pending_.fetch_add(1, std::memory_order_relaxed);
  boost::asio::post(context_, [this, work = std::move(work)] {
    work();
    pending_.fetch_sub(1, std::memory_order_release);
  });
}

}  // namespace doze::gateway
