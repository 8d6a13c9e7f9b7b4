// Device helpers shared by the kernels: 16-byte vectors of eight bf16 values, warp reductions.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace doze::kernels {

// Two floats rounded to bf16 and packed into one 32-bit word, the first in the low half.
__device__ __forceinline__ uint32_t PackBf16x2(float lo, float hi) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&h);
}

// Eight bf16 values moved as one 16-byte load or store.
struct alignas(16) Bf16x8 {
  __nv_bfloat162 h[4];
};

// A Bf16x8 read or written as one 128-bit access. Copied as a struct (an assignment, a conditional, a
// reference into memory) it is moved member by member: four 32-bit loads or stores per vector, four times
// the memory instructions and, in shared memory, four-way bank conflicts across a warp.
__device__ __forceinline__ Bf16x8 LoadVec(const Bf16x8* p) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  return *reinterpret_cast<const Bf16x8*>(&raw);
}

// LoadVec(p) where `valid`, else zeros (nothing read); written as `valid ? *p : Bf16x8{}` the load is split
// like any struct copy.
__device__ __forceinline__ Bf16x8 LoadVecOrZero(const Bf16x8* p, bool valid) {
  uint4 raw = {0, 0, 0, 0};
  if (valid) raw = *reinterpret_cast<const uint4*>(p);
  return *reinterpret_cast<const Bf16x8*>(&raw);
}

__device__ __forceinline__ void StoreVec(Bf16x8* p, const Bf16x8& v) {
  *reinterpret_cast<uint4*>(p) = *reinterpret_cast<const uint4*>(&v);
}

__device__ __forceinline__ void Bf16x8ToFloat(const Bf16x8& v, float (&out)[8]) {
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    float2 f = __bfloat1622float2(v.h[i]);
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}

__device__ __forceinline__ void LoadBf16x8(const __nv_bfloat16* src, float (&out)[8]) {
  Bf16x8ToFloat(LoadVec(reinterpret_cast<const Bf16x8*>(src)), out);
}

__device__ __forceinline__ void StoreBf16x8(__nv_bfloat16* dst, const float (&in)[8]) {
  Bf16x8 v;
#pragma unroll
  for (int i = 0; i < 4; ++i) v.h[i] = __floats2bfloat162_rn(in[2 * i], in[2 * i + 1]);
  StoreVec(reinterpret_cast<Bf16x8*>(dst), v);
}

__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__device__ __forceinline__ float WarpMax(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Sum over the whole block; `scratch` holds one float per warp. Every thread gets the result.
__device__ __forceinline__ float BlockSum(float v, float* scratch) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int num_warps = (blockDim.x + 31) >> 5;
  v = WarpSum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float total = 0.f;
  for (int w = 0; w < num_warps; ++w) total += scratch[w];
  return total;
}

}  // namespace doze::kernels
