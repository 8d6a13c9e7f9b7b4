#include "gateway/common/clock.h"

namespace doze::gateway {

Clock* RealClock::Get() {
  static RealClock* clock = new RealClock();
  return clock;
}

}  // namespace doze::gateway
