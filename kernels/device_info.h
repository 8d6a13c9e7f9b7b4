// Properties of the current CUDA device that launch plans need, queried once per process.
#pragma once

namespace doze::kernels {

// Streaming multiprocessors of the current device (the first call's device).
int MultiprocessorCount();

// The current device's compute capability, major version (9 on Hopper).
int ComputeCapabilityMajor();

}  // namespace doze::kernels
