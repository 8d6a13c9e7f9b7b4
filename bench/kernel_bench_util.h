// Timing and reporting helpers of doze_kernel_bench.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "kernels/cuda_check.h"

namespace doze::bench {

// The measured device-to-device copy ceiling of the H100 test machine (docs: shared/GPU.md), in GB/s.
inline constexpr double kCeilingGBs = 3000.0;

// One row of the report.
struct Result {
  std::string group, name;
  double microseconds = 0;
  double bytes = 0;  // device-memory bytes the op must move; 0 when not a bandwidth figure
  double tokens_per_s = 0;
};

// Whether a CUDA device is there; else says so on stderr, naming `program`.
inline bool HaveCudaDevice(const char* program) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0) return true;
  std::fprintf(stderr, "%s: no CUDA device\n", program);
  return false;
}

// Median microseconds of one call of `enqueue(i)`: the calls are captured into a graph (`calls` of them, i =
// 0..) so launch gaps stay out, the graph is replayed `trials` times after a warm-up, and the median replay
// is divided by `calls`. `enqueue(0)` runs once eagerly first, so lazy set-up (cuBLASLt plans, module loads)
// happens outside.
inline double TimeInGraph(cudaStream_t stream, const std::function<void(int)>& enqueue, int calls,
                          int trials = 7) {
  enqueue(0);
  CUDA_CHECK(cudaStreamSynchronize(stream));
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < calls; ++i) enqueue(i);
  CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  CUDA_CHECK(cudaGraphLaunch(exec, stream));
  std::vector<float> ms(trials);
  for (float& t : ms) {
    CUDA_CHECK(cudaEventRecord(start, stream));
    CUDA_CHECK(cudaGraphLaunch(exec, stream));
    CUDA_CHECK(cudaEventRecord(stop, stream));
    CUDA_CHECK(cudaEventSynchronize(stop));
    CUDA_CHECK(cudaEventElapsedTime(&t, start, stop));
  }
  CUDA_CHECK(cudaEventDestroy(start));
  CUDA_CHECK(cudaEventDestroy(stop));
  CUDA_CHECK(cudaGraphExecDestroy(exec));
  CUDA_CHECK(cudaGraphDestroy(graph));
  std::nth_element(ms.begin(), ms.begin() + trials / 2, ms.end());
  return ms[trials / 2] * 1000.0 / calls;
}

// Median of host-clock samples.
inline double Median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

// Prints every result as one JSON line, then a table.
inline void Report(const std::vector<Result>& results, const std::string& device) {
  std::printf("{\"bench\":\"doze_kernel_bench\",\"device\":\"%s\",\"ceiling_gbs\":%.0f,\"results\":[",
              device.c_str(), kCeilingGBs);
  for (size_t i = 0; i < results.size(); ++i) {
    const Result& r = results[i];
    std::printf("%s{\"group\":\"%s\",\"name\":\"%s\",\"us\":%.2f,\"bytes\":%.0f,\"tokens_per_s\":%.0f}",
                i ? "," : "", r.group.c_str(), r.name.c_str(), r.microseconds, r.bytes, r.tokens_per_s);
  }
  std::printf("]}\n\n%-10s %-40s %10s %9s %7s %12s\n", "group", "name", "us", "GB/s", "%ceil", "tokens/s");
  for (const Result& r : results) {
    const double gbs = r.bytes > 0 ? r.bytes / (r.microseconds * 1e3) : 0;
    std::printf("%-10s %-40s %10.2f %9.0f %6.0f%% %12.0f\n", r.group.c_str(), r.name.c_str(), r.microseconds,
                gbs, 100.0 * gbs / kCeilingGBs, r.tokens_per_s);
  }
  std::printf("\n");
  std::fflush(stdout);
}

}  // namespace doze::bench
