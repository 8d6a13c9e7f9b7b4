// Programmatic dependent launch (Hopper): a kernel launched with LaunchWithPdl may start while the kernel
// before it on the stream is still running, so its prologue (weight loads, index arithmetic) overlaps that
// kernel's tail. Such a kernel must call GridDependencyWait before it reads anything an earlier kernel wrote
// or writes anything an earlier kernel reads; the wait returns once the previous grid has completed and its
// writes are visible. Works inside CUDA graph capture.
#pragma once

#include <cuda_runtime.h>

#include <utility>

#include "kernels/cuda_check.h"

namespace doze::kernels {

// Blocks until the grid this one depends on has finished; a no-op when launched without the attribute.
__device__ __forceinline__ void GridDependencyWait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Lets the next kernel on the stream (if launched with LaunchWithPdl) start its prologue.
__device__ __forceinline__ void LaunchDependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Launches `kernel` with programmatic stream serialization allowed, in thread block clusters of `cluster`
// blocks when given, and checks the launch.
template <typename... KernelArgs, typename... Args>
void LaunchClustersWithPdl(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, dim3 cluster,
                           size_t shared_bytes, cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute attributes[2] = {};
  attributes[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attributes[0].val.programmaticStreamSerializationAllowed = 1;
  attributes[1].id = cudaLaunchAttributeClusterDimension;
  attributes[1].val.clusterDim.x = cluster.x;
  attributes[1].val.clusterDim.y = cluster.y;
  attributes[1].val.clusterDim.z = cluster.z;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  config.attrs = attributes;
  config.numAttrs = cluster.x * cluster.y * cluster.z > 1 ? 2 : 1;
  CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...));
}

// Launches `kernel` with programmatic stream serialization allowed, and checks the launch.
template <typename... KernelArgs, typename... Args>
void LaunchWithPdl(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t shared_bytes,
                   cudaStream_t stream, Args&&... args) {
  LaunchClustersWithPdl(kernel, grid, block, dim3(1, 1, 1), shared_bytes, stream,
                        std::forward<Args>(args)...);
}

}  // namespace doze::kernels
