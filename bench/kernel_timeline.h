// The start and end of every kernel and memory copy the GPU ran between Start and Stop, from CUPTI's activity
// records: kernels launched from CUDA graphs included, and kernels that overlap (programmatic dependent
// launch) each with their own span. Part of doze_kernel_bench (--timeline).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace doze::bench {

struct KernelSpan {
  std::string name;  // the kernel function's name, without namespaces, template arguments or parameters;
                     // MemcpyHtoD, MemcpyDtoH or Memcpy for a copy
  int grid[3] = {0, 0, 0};  // a copy: its bytes, 0, 0
  uint64_t start_ns = 0, end_ns = 0;
};

// Enables the kernel records; exits the process with CUPTI's message if it cannot.
void StartKernelTimeline();

// Flushes and disables the records; returns the spans since StartKernelTimeline, ordered by start.
std::vector<KernelSpan> StopKernelTimeline();

}  // namespace doze::bench
