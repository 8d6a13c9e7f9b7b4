// Owning device and pinned-host allocations for the CUDA backend, and a bump allocator that carves one device
// allocation into 256-byte-aligned pieces (so activation pointers stay fixed for captured graphs).
#pragma once

#include <cstddef>
#include <string>

#include "absl/status/status.h"

namespace doze::cuda {

// Device memory, freed on destruction.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;

  // Frees what is held and allocates `bytes`; ResourceExhausted, naming `what`, when the device has too
  // little.
  absl::Status Allocate(size_t bytes, const std::string& what);
  void* get() const { return data_; }
  size_t bytes() const { return bytes_; }

 private:
  void Free();
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// Page-locked host memory (fast, asynchronous copies), freed on destruction.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer();
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  // Frees what is held and allocates `bytes`.
  absl::Status Allocate(size_t bytes, const std::string& what);
  void* get() const { return data_; }
  size_t bytes() const { return bytes_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// Hands out consecutive aligned pieces: first a sizing pass over a null base (Take returns offsets), then the
// same calls over the real allocation.
class BumpAllocator {
 public:
  explicit BumpAllocator(void* base) : base_(static_cast<char*>(base)) {}
  template <typename T>
  T* Take(size_t count) {
    T* piece = reinterpret_cast<T*>(base_ + used_);
    used_ += (count * sizeof(T) + 255) / 256 * 256;
    return piece;
  }
  size_t used() const { return used_; }

 private:
  char* base_;
  size_t used_ = 0;
};

}  // namespace doze::cuda
