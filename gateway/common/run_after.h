// Runs a callback once, after a delay, on an executor: a one-shot timer that keeps itself alive until it
// fires (not called when the timer is cancelled, as at the io_context's shutdown).
#pragma once

#include <functional>
#include <memory>

#include "absl/time/time.h"
#include "boost/asio/any_io_executor.hpp"
#include "boost/asio/steady_timer.hpp"

namespace doze::gateway {

inline void RunAfter(const boost::asio::any_io_executor& executor, absl::Duration delay,
                     std::function<void()> callback) {
  auto timer = std::make_shared<boost::asio::steady_timer>(executor, absl::ToChronoNanoseconds(delay));
  timer->async_wait([timer, callback = std::move(callback)](boost::system::error_code error) {
    if (!error) callback();
  });
}

}  // namespace doze::gateway
