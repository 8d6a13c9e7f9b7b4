#include "worker/service/listen_address.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace doze::service {
namespace {

// Whether a server accepts connections on the unix socket at `path`.
bool SomeoneListens(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.data(), path.size());
  const bool connected = connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0;
  close(fd);
  return connected;
}

absl::Status CheckUnixPath(const std::string& listen, const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat("--listen ", listen, ": no socket path"));
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("--listen ", listen,
                                                   ": the path is longer than a unix socket's ",
                                                   sizeof(sockaddr_un::sun_path) - 1, " bytes"));
  }
  struct stat info {};
  if (stat(path.c_str(), &info) != 0) return absl::OkStatus();  // nothing there yet
  if (!S_ISSOCK(info.st_mode))
    return absl::InvalidArgumentError(
        absl::StrCat("--listen ", listen, ": ", path, " exists and is not a socket"));
  if (SomeoneListens(path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--listen ", listen, ": another process is serving on ", path));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckListenAddress(const std::string& listen) {
  if (absl::StartsWith(listen, "unix:")) return CheckUnixPath(listen, listen.substr(5));
  const size_t colon = listen.rfind(':');
  int port = 0;
  if (colon == std::string::npos || colon == 0 || !absl::SimpleAtoi(listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--listen ", listen, ": expected unix:PATH or HOST:PORT with a port from 0 to 65535"));
  }
  return absl::OkStatus();
}

}  // namespace doze::service
