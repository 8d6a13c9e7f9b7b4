#include <cuda_runtime.h>

#include "worker/service/device_context.h"

namespace doze::service {

bool CreateDeviceContext(const std::string& backend) {
  if (backend == "cpu") return false;
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) return false;
  // cudaFree(nullptr) is the customary way to make the runtime create its context without other effects.
  return cudaFree(nullptr) == cudaSuccess;
}

}  // namespace doze::service
