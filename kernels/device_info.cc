#include "kernels/device_info.h"

#include <cuda_runtime.h>

#include "kernels/cuda_check.h"

namespace doze::kernels {

int MultiprocessorCount() {
  static const int count = [] {
    int device = 0, sms = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    return sms;
  }();
  return count;
}

int ComputeCapabilityMajor() {
  static const int major = [] {
    int device = 0, value = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    CUDA_CHECK(cudaDeviceGetAttribute(&value, cudaDevAttrComputeCapabilityMajor, device));
    return value;
  }();
  return major;
}

}  // namespace doze::kernels
