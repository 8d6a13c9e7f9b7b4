// doze-worker's --listen, checked before the worker loads its model: "unix:PATH" or "HOST:PORT".
#pragma once

#include <string>

#include "absl/status/status.h"

namespace doze::service {

// OK, or InvalidArgument saying what is wrong: an empty or over-long unix path, a path that is something
// other than a socket, a socket another live server answers on (one left by a process that died is taken
// over), no ":PORT", or a port outside 0-65535.
absl::Status CheckListenAddress(const std::string& listen);

}  // namespace doze::service
