#include "kernels/device_info.h"

#include <cuda_runtime.h>

#include "kernels/cuda_check.h"

namespace doze::kernels {
namespace {

int CurrentDeviceAttribute(cudaDeviceAttr attribute) {
  int device = 0, value = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  CUDA_CHECK(cudaDeviceGetAttribute(&value, attribute, device));
  return value;
}

}  // namespace

int MultiprocessorCount() {
  static const int count = CurrentDeviceAttribute(cudaDevAttrMultiProcessorCount);
  return count;
}

int ComputeCapabilityMajor() {
  static const int major = CurrentDeviceAttribute(cudaDevAttrComputeCapabilityMajor);
  return major;
}

}  // namespace doze::kernels
