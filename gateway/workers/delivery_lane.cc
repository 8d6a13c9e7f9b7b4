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

void DeliveryLane::Post(std::function<void()> work) { boost::asio::post(context_, std::move(work)); }

}  // namespace doze::gateway
