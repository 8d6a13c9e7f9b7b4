// The Hopper tensor memory accelerator (sm_90): one thread asks for a 2-D box of a tensor (described by a
// CUtensorMap, kernels/tensor_map.h) to be copied into shared memory, and the copy's bytes are counted on an
// mbarrier in shared memory that the block's threads wait on. The copies do not pass through registers and
// cost one instruction a box, however many bytes.
#pragma once

#include <cuda.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace doze::kernels {

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900

__device__ __forceinline__ uint32_t SharedAddress(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Sets up `barrier` for one arrival a phase; then FenceBarrierInit and a block barrier before any use.
__device__ __forceinline__ void BarrierInit(uint64_t* barrier) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" ::"r"(SharedAddress(barrier)) : "memory");
}

// Makes the initialized barriers visible to the copy engine.
__device__ __forceinline__ void FenceBarrierInit() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}

// The phase's one arrival, announcing `bytes` that copies will bring before the phase completes.
__device__ __forceinline__ void BarrierExpectBytes(uint64_t* barrier, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(SharedAddress(barrier)),
               "r"(bytes)
               : "memory");
}

// Blocks until the barrier's phase of parity `parity` has completed.
__device__ __forceinline__ void BarrierWait(uint64_t* barrier, uint32_t parity) {
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "WAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT;\n"
      "}\n" ::"r"(SharedAddress(barrier)),
      "r"(parity)
      : "memory");
}

// Copies the box at (x, y) (x the inner, contiguous dimension) of `map`'s tensor to shared `dst`, counted
// on `barrier`; elements outside the tensor arrive as zeros (and count).
__device__ __forceinline__ void TmaLoad2d(void* dst, const CUtensorMap* map, int x, int y,
                                          uint64_t* barrier) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], "
      "[%4];\n" ::"r"(SharedAddress(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(x), "r"(y), "r"(SharedAddress(barrier))
      : "memory");
}

// Copies `bytes` (a multiple of 16, both addresses 16-byte aligned) from global `src` to shared `dst`,
// counted on `barrier`.
__device__ __forceinline__ void BulkLoad(void* dst, const void* src, uint32_t bytes, uint64_t* barrier) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
          SharedAddress(dst)),
      "l"(reinterpret_cast<uint64_t>(src)), "r"(bytes), "r"(SharedAddress(barrier))
      : "memory");
}

#endif  // __CUDA_ARCH__ >= 900

}  // namespace doze::kernels
