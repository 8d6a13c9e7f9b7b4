// Creates the device context up front, so that the start-up timeline shows its cost apart from the weights'.
#pragma once

#include <string>

namespace doze::service {

// For backend "cuda" or "auto" in a build with CUDA and a GPU present: creates the primary CUDA context on
// this thread (the engine thread). Returns whether a context was created.
bool CreateDeviceContext(const std::string& backend);

}  // namespace doze::service
