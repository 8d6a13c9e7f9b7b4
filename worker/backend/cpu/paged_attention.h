// Grouped-query causal attention over a paged KV cache, and the cache writes that feed it.
#pragma once

#include <cstdint>

#include "worker/backend/cpu/thread_pool.h"

namespace doze {

// The heads of one attention layer and the block size of its cache. A layer's cache holds K and V each as
// [num_blocks, block_size, num_kv_heads, head_dim] fp32: token slot s is block s / block_size, offset s %
// block_size.
struct AttentionShape {
  int num_heads = 0;     // query heads; a multiple of num_kv_heads
  int num_kv_heads = 0;  // query head h reads KV head h / (num_heads / num_kv_heads)
  int head_dim = 0;
  int block_size = 0;
};

// Copies the K and V rows of each token into its cache slot. Slots must be within the cache.
void WriteKvCache(const AttentionShape& shape,
                  const float* k,        // [num_tokens, num_kv_heads * head_dim]
                  const float* v,        // [num_tokens, num_kv_heads * head_dim]
                  const int32_t* slots,  // [num_tokens]
                  int64_t num_tokens,
                  float* k_cache,   // [num_blocks, block_size, num_kv_heads, head_dim]
                  float* v_cache);  // [num_blocks, block_size, num_kv_heads, head_dim]

// Token t of sequence token_seq[t] attends to positions [0, positions[t]] of its sequence, whose KV rows are
// found through the sequence's block table: softmax(q k^T / sqrt(head_dim)) v in fp32, the maximum subtracted
// first. Every block the positions reach must be in the table and in the cache.
void PagedAttention(const AttentionShape& shape,
                    const float* q,               // [num_tokens, num_heads * head_dim]
                    const float* k_cache,         // [num_blocks, block_size, num_kv_heads, head_dim]
                    const float* v_cache,         // [num_blocks, block_size, num_kv_heads, head_dim]
                    const int32_t* positions,     // [num_tokens]
                    const int32_t* token_seq,     // [num_tokens] the sequence of each token
                    const int32_t* block_tables,  // [num_seqs, max_blocks_per_seq]
                    int max_blocks_per_seq, int64_t num_tokens,
                    float* out,  // [num_tokens, num_heads * head_dim]
                    ThreadPool* pool);

}  // namespace doze
