#include "worker/service/device_context.h"

namespace doze::service {

// This build has no CUDA backend.
bool CreateDeviceContext(const std::string&) { return false; }

}  // namespace doze::service
