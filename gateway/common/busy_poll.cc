#include "gateway/common/busy_poll.h"

#include <sched.h>

namespace doze::gateway {

bool BusyPoll::KeepPolling() {
  if (!enabled() || std::chrono::steady_clock::now() - last_event_ >= window_) return false;
  sched_yield();
  return true;
}

}  // namespace doze::gateway
