// cp.async (sm_80+): 16-byte copies from global to shared memory that do not pass through registers, grouped
// and waited on per thread.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace doze::kernels {

// Which caches a copy fills: L1 and L2 (rows that other warps of the multiprocessor read again) or L2 only
// (data streamed once per block, such as weights).
enum class CopyCache { kL1AndL2, kL2Only };

// Copies 16 bytes from `src` to shared `dst`; a false `valid` writes zeros and reads nothing.
template <CopyCache kCache = CopyCache::kL1AndL2>
__device__ __forceinline__ void CopyAsync16(void* dst, const void* src, bool valid) {
  const uint32_t address = static_cast<uint32_t>(__cvta_generic_to_shared(dst));
  if constexpr (kCache == CopyCache::kL1AndL2) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 16, %2;\n" ::"r"(address), "l"(src),
                 "r"(valid ? 16 : 0)
                 : "memory");
  } else {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(address), "l"(src),
                 "r"(valid ? 16 : 0)
                 : "memory");
  }
}

// Closes this thread's current group of copies.
__device__ __forceinline__ void CommitAsyncCopies() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

// Waits until at most `kPending` of this thread's newest commit groups are still in flight.
template <int kPending>
__device__ __forceinline__ void WaitAsyncCopies() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

}  // namespace doze::kernels
