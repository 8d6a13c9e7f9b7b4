// Warpgroup tensor-core products (sm_90a): wgmma.mma_async over operands in shared memory. Both operands are
// K-major tiles of 128-byte rows (64 bf16 values of k) in the 128-byte swizzle (the 16-byte piece c of row r
// at r * 128 + ((c ^ (r & 7)) << 4), atoms of 8 rows on 1,024-byte boundaries): A holds 64 rows of M, B N
// rows (N = 8 * kNTiles). Accumulators d[j][v] are laid out as mma.sync's m16n8 tiles: warp w of the group
// holds M rows 16w + g (v = 0, 1) and 16w + g + 8 (v = 2, 3), N columns 8j + 2t + (v & 1) (lane = 4g + t).
// Only compiled where the architecture-specific features exist (__CUDA_ARCH_FEAT_SM90_ALL, i.e. sm_90a);
// callers keep a path without it.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace doze::kernels {

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define DOZE_HAVE_WGMMA 1

// The descriptor of a K-major, 128-byte-swizzled tile whose 8-row atoms are 1,024 bytes apart, starting at
// shared address `address` (an atom's start, plus 32 bytes per 16-value step of k within the row).
__device__ __forceinline__ uint64_t SwizzledTileDescriptor(uint32_t address) {
  constexpr uint64_t kLeadingBytes = 16;  // unused for swizzled K-major tiles whose k step fits in a row
  constexpr uint64_t kAtomBytes = 1024;   // between consecutive 8-row atoms
  constexpr uint64_t kSwizzle128 = 1;
  return static_cast<uint64_t>((address & 0x3FFFF) >> 4) | ((kLeadingBytes >> 4) << 16) |
         ((kAtomBytes >> 4) << 32) | (kSwizzle128 << 62);
}

// Makes this thread's earlier shared-memory writes (st.shared, cp.async) visible to the tensor cores' reads;
// then a barrier before the wgmma.
__device__ __forceinline__ void FenceSharedForAsyncProxy() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// Orders the warpgroup's register accesses before the wgmma that follow.
__device__ __forceinline__ void WgmmaFence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }

// Closes the group of wgmma issued since the last commit, and waits for all of them.
__device__ __forceinline__ void WgmmaCommitAndWait() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
  asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
}

// d += A[64 x 16] B[16 x 8 kNTiles], A and B given by descriptors. One specialization per N: the
// instruction's shape and its accumulator operand list (4 kNTiles registers) are spelled out in the PTX.
template <int kNTiles>
__device__ __forceinline__ void Wgmma(float (&d)[kNTiles][4], uint64_t a, uint64_t b);

template <>
__device__ __forceinline__ void Wgmma<1>(float (&d)[1][4], uint64_t a, uint64_t b) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n8k16.f32.bf16.bf16 {%0, %1, %2, %3}, %4, %5, 1, 1, 1, 0, 0;\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3])
      : "l"(a), "l"(b));
}

template <>
__device__ __forceinline__ void Wgmma<2>(float (&d)[2][4], uint64_t a, uint64_t b) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n16k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7}, %8, %9, 1, 1, "
      "1, "
      "0, 0;\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]),
        "+f"(d[1][2]), "+f"(d[1][3])
      : "l"(a), "l"(b));
}

template <>
__device__ __forceinline__ void Wgmma<4>(float (&d)[4][4], uint64_t a, uint64_t b) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, "
      "%11, "
      "%12, %13, %14, %15}, %16, %17, 1, 1, 1, 0, 0;\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]),
        "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
        "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3])
      : "l"(a), "l"(b));
}

template <>
__device__ __forceinline__ void Wgmma<8>(float (&d)[8][4], uint64_t a, uint64_t b) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, "
      "%11, "
      "%12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
      "%32, %33, 1, 1, 1, 0, 0;\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]),
        "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
        "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]),
        "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
        "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]),
        "+f"(d[7][2]), "+f"(d[7][3])
      : "l"(a), "l"(b));
}

template <>
__device__ __forceinline__ void Wgmma<10>(float (&d)[10][4], uint64_t a, uint64_t b) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n80k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, "
      "%10, %11, %12, %13, %14, %15, %16, %17, %18, %19, "
      "%20, %21, %22, %23, %24, %25, %26, %27, %28, %29, "
      "%30, %31, %32, %33, %34, %35, %36, %37, %38, %39"
      "}, %40, %41, 1, 1, 1, 0, 0;\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]),
        "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
        "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]),
        "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
        "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]),
        "+f"(d[7][2]), "+f"(d[7][3]), "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]),
        "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3])
      : "l"(a), "l"(b));
}

#endif  // __CUDA_ARCH_FEAT_SM90_ALL

}  // namespace doze::kernels
