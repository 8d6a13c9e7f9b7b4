#include "gateway/common/owner_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace doze::gateway {
namespace {

// The pid the holder wrote into the lock file ("" when unreadable).
std::string HolderPid(int fd) {
  char text[32] = {};
  const ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
  return n > 0 ? std::string(absl::StripAsciiWhitespace(std::string(text, n))) : std::string();
}

}  // namespace

absl::StatusOr<OwnerLock> OwnerLock::Acquire(const std::string& path, std::string_view why) {
  const std::string lock_path = path + ".lock";
  const int fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::FailedPreconditionError(absl::StrCat("cannot open ", lock_path, ": ", std::strerror(errno)));
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    const std::string holder = HolderPid(fd);
    close(fd);
    if (error != EWOULDBLOCK) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot lock ", lock_path, ": ", std::strerror(error)));
    }
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is in use by another process",
                     holder.empty() ? "" : absl::StrCat(" (pid ", holder, ")"), ": ", std::string(why)));
  }
  // The pid is for a second process's message only: the lock holds without it, so a failed write is let be.
  const std::string pid = absl::StrCat(getpid(), "\n");
  if (ftruncate(fd, 0) == 0) (void)pwrite(fd, pid.data(), pid.size(), 0);
  return OwnerLock(fd);
}

OwnerLock::OwnerLock(OwnerLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

OwnerLock& OwnerLock::operator=(OwnerLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

OwnerLock::~OwnerLock() {
  if (fd_ >= 0) close(fd_);
}

}  // namespace doze::gateway
