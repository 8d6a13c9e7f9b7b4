// Properties of the current CUDA device that launch plans need, queried once per process.
#pragma once

namespace doze::kernels {

// Streaming multiprocessors of the current device (the first call's device).
int MultiprocessorCount();

}  // namespace doze::kernels
