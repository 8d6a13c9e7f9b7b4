// Rotary position embedding (rotate-half, as Hugging Face's Qwen2) fused with the write of K and V into the
// paged cache.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace doze::kernels {

// Shape of the fused QKV projection output and of one layer's paged KV cache.
struct RotaryShape {
  int num_tokens = 0;
  int num_q_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;    // even; the fused QKV epilogues need a power of two (RotaryHeadDimSupported)
  int block_size = 0;  // token slots per KV block
};

// The rotary and cache-write epilogue of the QKV projection.
struct RotaryCacheOutput {
  __nv_bfloat16* qkv;               // [m, (num_q_heads + 2 * num_kv_heads) * head_dim], Q and K rotated
  const int32_t* positions;         // [m]
  const int32_t* slot_mapping;      // [m]; negative: no cache write (padding)
  const float* inv_freq;            // [head_dim / 2]
  __nv_bfloat16* k_cache;           // [num_blocks, block_size, num_kv_heads, head_dim]
  __nv_bfloat16* v_cache;           // [num_blocks, block_size, num_kv_heads, head_dim]
  const float2* cos_sin = nullptr;  // [m, head_dim / 2]: RotaryTable of positions, or nullptr (computed)
};

// Rotates the Q and K heads of every row of `qkv` in place by its position, then copies K and V into the
// cache slot slot_mapping[t] (block_id * block_size + offset); a negative slot skips the write (padding
// rows). cos/sin are computed in fp32 from `inv_freq` and rounded to bf16 before use, as the reference model
// does.
void RotaryAndCacheWrite(__nv_bfloat16* qkv,  // [num_tokens, (num_q_heads + 2 * num_kv_heads) * head_dim]
                         const int32_t* positions,     // [num_tokens]
                         const int32_t* slot_mapping,  // [num_tokens]
                         const float* inv_freq,        // [head_dim / 2]
                         __nv_bfloat16* k_cache,       // [num_blocks, block_size, num_kv_heads, head_dim]
                         __nv_bfloat16* v_cache,       // [num_blocks, block_size, num_kv_heads, head_dim]
                         const RotaryShape& shape, cudaStream_t stream);

// cos_sin[t][i] = (cos, sin) of positions[t] * inv_freq[i], each rounded to bf16: the values the rotary
// computes, once a step for every layer's QKV epilogue (RotaryCacheOutput::cos_sin).
void RotaryTable(const int32_t* positions,  // [num_tokens]
                 const float* inv_freq,     // [head_dim / 2]
                 float2* cos_sin,           // [num_tokens, head_dim / 2]
                 int num_tokens, int head_dim, cudaStream_t stream);

}  // namespace doze::kernels
