// One process's hold on a file that only one process may use at a time: an flock(2) on "PATH.lock", which
// holds the holder's pid for the message a second process gets. The kernel drops the lock when the holder
// exits, however it exits.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace doze::gateway {

class OwnerLock {
 public:
  // Takes the lock of `path` (creating PATH.lock), or FailedPrecondition naming the pid that holds it and
  // `why` one process at a time matters.
  static absl::StatusOr<OwnerLock> Acquire(const std::string& path, std::string_view why);

  OwnerLock() = default;
  OwnerLock(OwnerLock&& other) noexcept;
  OwnerLock& operator=(OwnerLock&& other) noexcept;
  ~OwnerLock();

 private:
  explicit OwnerLock(int fd) : fd_(fd) {}

  int fd_ = -1;
};

}  // namespace doze::gateway
