#include "worker/backend/cuda/device_memory.h"

#include <cuda_runtime.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace doze::cuda {

DeviceBuffer::~DeviceBuffer() { Free(); }

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    Free();
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void DeviceBuffer::Free() {
  if (data_ != nullptr) cudaFree(data_);
  data_ = nullptr;
  bytes_ = 0;
}

absl::Status DeviceBuffer::Allocate(size_t bytes, const std::string& what) {
  Free();
  const cudaError_t err = cudaMalloc(&data_, bytes == 0 ? 1 : bytes);
  if (err != cudaSuccess) {
    data_ = nullptr;
    cudaGetLastError();  // clear the error so later calls do not see it
    return absl::ResourceExhaustedError(
        absl::StrCat("cudaMalloc of ", bytes, " bytes for ", what, ": ", cudaGetErrorString(err)));
  }
  bytes_ = bytes;
  return absl::OkStatus();
}

PinnedBuffer::~PinnedBuffer() {
  if (data_ != nullptr) cudaFreeHost(data_);
}

absl::Status PinnedBuffer::Allocate(size_t bytes, const std::string& what) {
  if (data_ != nullptr) cudaFreeHost(data_);
  data_ = nullptr;
  bytes_ = 0;
  const cudaError_t err = cudaMallocHost(&data_, bytes == 0 ? 1 : bytes);
  if (err != cudaSuccess) {
    data_ = nullptr;
    cudaGetLastError();
    return absl::ResourceExhaustedError(
        absl::StrCat("cudaMallocHost of ", bytes, " bytes for ", what, ": ", cudaGetErrorString(err)));
  }
  bytes_ = bytes;
  return absl::OkStatus();
}

}  // namespace doze::cuda
