// The gateway's notion of time, injected so that policies and timeouts are tested with a fake clock.
#pragma once

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace doze::gateway {

// A source of wall-clock time.
class Clock {
 public:
  virtual ~Clock() = default;

  // Returns the current time.
  virtual absl::Time Now() const = 0;
};

// The system clock.
class RealClock : public Clock {
 public:
  // Returns absl::Now().
  absl::Time Now() const override { return absl::Now(); }

  // Returns a process-wide instance.
  static Clock* Get();
};

// A clock that moves only when told to; thread-safe.
class FakeClock : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1'700'000'000)) : now_(start) {}

  // Returns the time last set.
  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }

  // Moves the clock forward by `delta`.
  void Advance(absl::Duration delta) {
    absl::MutexLock lock(&mu_);
    now_ += delta;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace doze::gateway
