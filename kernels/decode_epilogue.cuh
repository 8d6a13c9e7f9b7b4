// The epilogues the fused decode projections share (kernels/decode_gemv.cu, kernels/decode_mma.cu): which
// output columns one work item combines, and what it computes from its dot products. Roundings are those of
// the unfused ops (bf16 after each op the model rounds), so every path computes the same values.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/rotary_angle.cuh"
#include "kernels/rotary_kv_cache.h"

namespace doze::kernels {

// kResidual: residual += bf16(x @ w^T); kStore: y = bf16(x @ w^T); kSwiGlu: act = silu(g) * u of the gate
// and up halves; kRotary: qkv = x @ w^T + bias, Q and K rotated, K and V written to the paged cache.
enum class Epilogue { kResidual, kStore, kSwiGlu, kRotary };

__device__ __forceinline__ float RoundBf16(float v) { return __bfloat162float(__float2bfloat16(v)); }

// Whether the rotary epilogues take a head size: a power of two (64 and 128, every Qwen2 model), so that a
// pair's place is a shift and a mask (runtime divisions, several a pair, were a large part of the QKV
// epilogue's instructions).
__host__ __device__ constexpr bool RotaryHeadDimSupported(int head_dim) {
  return head_dim >= 2 && (head_dim & (head_dim - 1)) == 0;
}

// Rotary pair `item` of a QKV row: its head and its index i in the head's first half (pair i is dims i and
// i + head_dim / 2). head_dim: RotaryHeadDimSupported.
struct PairPlace {
  int head, i;
};
__device__ __forceinline__ PairPlace PlaceOfPair(int item, int head_dim) {
  const int half = head_dim >> 1;
  return {item >> (__ffs(half) - 1), item & (half - 1)};
}

// The output columns of one work item: one column (kResidual, kStore), gate and up (kSwiGlu, `num_items` the
// intermediate size), or the two halves x[i], x[i + head_dim / 2] of one rotary pair (kRotary).
template <Epilogue E>
__device__ __forceinline__ int2 ItemColumns(int item, int num_items, int head_dim) {
  if constexpr (E == Epilogue::kResidual || E == Epilogue::kStore) {
    return {item, item};
  } else if constexpr (E == Epilogue::kSwiGlu) {
    return {item, item + num_items};
  } else {
    const PairPlace pair = PlaceOfPair(item, head_dim);
    const int col = pair.head * head_dim + pair.i;
    return {col, col + head_dim / 2};
  }
}

// silu(g) * u from the fp32 gate and up sums, each rounded to bf16 first (as SiluMul reads them).
__device__ __forceinline__ float SwiGlu(float gate_sum, float up_sum) {
  const float g = RoundBf16(gate_sum), u = RoundBf16(up_sum);
  return g / (1.f + expf(-g)) * u;
}

// cos and sin of one rotary pair at `position`, rounded to bf16; the identity for the V heads (pair `item`
// of a head at or past num_q_heads + num_kv_heads).
__device__ __forceinline__ float2 RotaryCosSin(const RotaryShape& s, int item, int position,
                                               const float* inv_freq) {
  const PairPlace pair = PlaceOfPair(item, s.head_dim);
  if (pair.head >= s.num_q_heads + s.num_kv_heads) return {1.f, 0.f};
  return RotaryPairCosSin(static_cast<float>(position), inv_freq[pair.i]);
}

// RotaryCosSin of pair `item` of row r, from the output's table where it has one.
__device__ __forceinline__ float2 RowCosSin(const RotaryCacheOutput& out, const RotaryShape& s, int item,
                                            int r) {
  if (out.cos_sin == nullptr) return RotaryCosSin(s, item, out.positions[r], out.inv_freq);
  const PairPlace pair = PlaceOfPair(item, s.head_dim);
  if (pair.head >= s.num_q_heads + s.num_kv_heads) return {1.f, 0.f};
  return out.cos_sin[static_cast<int64_t>(r) * (s.head_dim / 2) + pair.i];
}

// What the rotary epilogue of one pair reads besides its sums; it depends on constants and host metadata
// only, so a kernel may read it before its grid dependency wait.
struct RotaryInputs {
  float bias[2] = {0.f, 0.f};   // of the pair's two columns
  float2 cos_sin = {1.f, 0.f};  // RowCosSin
  int64_t slot = -1;            // the row's cache slot; negative: no cache write
};

// The RotaryInputs of pair `item` (columns `cols`) of row r; `bias` may be nullptr.
__device__ __forceinline__ RotaryInputs ReadRotaryInputs(const RotaryCacheOutput& out, const RotaryShape& s,
                                                         const __nv_bfloat16* bias, int item, int2 cols,
                                                         int r) {
  RotaryInputs in;
  if (bias != nullptr) {
    in.bias[0] = __bfloat162float(bias[cols.x]);
    in.bias[1] = __bfloat162float(bias[cols.y]);
  }
  in.cos_sin = RowCosSin(out, s, item, r);
  in.slot = out.slot_mapping[r];
  return in;
}

// Writes rotary pair `item` of token row r: sum0, sum1 are the pair's projections (fp32), the bias is added,
// and the pair is rotated by (cos, sin) into the qkv row and, for K and V heads of a row with a slot, into
// the cache. `width` is the qkv row's length.
__device__ __forceinline__ void StoreRotaryPair(const RotaryCacheOutput& out, const RotaryShape& s, int width,
                                                int r, int item, int2 cols, float sum0, float sum1,
                                                const RotaryInputs& in) {
  const int half = s.head_dim / 2;
  const auto [head, i] = PlaceOfPair(item, s.head_dim);
  const float2 cos_sin = in.cos_sin;
  const int64_t slot = in.slot;
  const float x1 = RoundBf16(sum0 + in.bias[0]);
  const float x2 = RoundBf16(sum1 + in.bias[1]);
  // The identity rotation (cos 1, sin 0) of the V heads leaves them exact.
  const float y1 = RoundBf16(x1 * cos_sin.x - x2 * cos_sin.y),
              y2 = RoundBf16(x2 * cos_sin.x + x1 * cos_sin.y);
  __nv_bfloat16* row = out.qkv + static_cast<int64_t>(r) * width;
  row[cols.x] = __float2bfloat16(y1);
  row[cols.y] = __float2bfloat16(y2);
  const int kv_head = head - s.num_q_heads;
  if (slot < 0 || kv_head < 0) return;
  const bool is_k = kv_head < s.num_kv_heads;
  __nv_bfloat16* cache = is_k ? out.k_cache : out.v_cache;
  const int64_t base = (slot * s.num_kv_heads + (is_k ? kv_head : kv_head - s.num_kv_heads)) * s.head_dim;
  cache[base + i] = __float2bfloat16(y1);
  cache[base + i + half] = __float2bfloat16(y2);
}

}  // namespace doze::kernels
