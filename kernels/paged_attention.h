// Paged attention with grouped-query heads over one query row per work item: every decode row and every
// prefill row (a prompt token attends causally to its sequence's cached keys and the earlier tokens of its
// chunk). Long contexts are split across thread blocks (flash-decoding): each block writes a partial softmax,
// a combine kernel merges them; decode batches of many rows take one larger block per row and KV head
// instead. Scores and the weighted sum of V run on bf16 tensor cores (probabilities rounded to bf16, sums in
// fp32).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/attention_partials.h"

namespace doze::kernels {

// KV blocks hold a multiple of this many token slots: the kernels read keys 16 at a time from one block.
constexpr int kAttentionBlockSizeMultiple = 16;

struct AttentionShape {
  int num_tokens = 0;   // query rows
  int num_q_heads = 0;  // a multiple of num_kv_heads, at most 8 query heads per KV head
  int num_kv_heads = 0;
  int head_dim = 0;            // 64 or 128
  int block_size = 0;          // token slots per KV block: a multiple of kAttentionBlockSizeMultiple
  int max_blocks_per_seq = 0;  // width of a block-table row
  int max_context =
      0;  // bound on context_lens; with num_tokens it fixes the grid (so one graph serves many lengths)
  int q_row_stride = 0;  // elements between consecutive query rows (the fused QKV row width)
  float scale = 0.f;     // softmax scale, 1/sqrt(head_dim)
  // Every row is its sequence's only new token (decode): the keys before each row's last were written by
  // earlier steps, so the kernel starts reading them before the previous kernel on the stream has finished.
  bool one_token_per_seq = false;
};

// Bytes of fp32 workspace PagedAttention may use for up to `max_tokens` rows.
size_t PagedAttentionWorkspaceBytes(int max_tokens, int num_q_heads, int num_kv_heads, int head_dim);

// out[t, h, :] = softmax(q[t, h] . K[s, :c]^T * scale) V[s, :c] with s = token_seq[t], c = context_lens[t],
// and the query head h reading KV head h / (num_q_heads / num_kv_heads). A row with c == 0 (padding) gets
// zeros. Launched with programmatic dependent launch (kernels/pdl.cuh), it reads block_tables, token_seq and
// context_lens before waiting for the previous kernel: they must not be written by the kernel just before;
// with shape.one_token_per_seq, neither may any key of the cache but each row's newest.
void PagedAttention(
    const __nv_bfloat16* q,        // [num_tokens, q_row_stride], head h at columns [h*head_dim, ...)
    const __nv_bfloat16* k_cache,  // [num_blocks, block_size, num_kv_heads, head_dim]
    const __nv_bfloat16* v_cache,  // [num_blocks, block_size, num_kv_heads, head_dim]
    const int32_t* block_tables,   // [num_seqs, max_blocks_per_seq]
    const int32_t* token_seq,      // [num_tokens] sequence of each query row
    const int32_t* context_lens,   // [num_tokens] keys each row attends (its position + 1)
    __nv_bfloat16* out,            // [num_tokens, num_q_heads, head_dim]
    float* workspace,              // [PagedAttentionWorkspaceBytes / 4]
    size_t workspace_bytes, const AttentionShape& shape, cudaStream_t stream);

// PagedAttention without the combine kernel: where the key ranges are split, `out` is not written and the
// returned partials are left for the kernel after it to merge (MergeResidualGemv); with one split the
// attention writes `out` itself and the partials say so (splits == 1). The workspace must stay untouched
// until that kernel has read it.
AttentionPartials PagedAttentionUnmerged(const __nv_bfloat16* q, const __nv_bfloat16* k_cache,
                                         const __nv_bfloat16* v_cache, const int32_t* block_tables,
                                         const int32_t* token_seq, const int32_t* context_lens,
                                         __nv_bfloat16* out,  // [num_tokens, num_q_heads, head_dim]
                                         float* workspace, size_t workspace_bytes,
                                         const AttentionShape& shape, cudaStream_t stream);

// The rotary embedding and cache write of decode rows done by the attention itself instead of a
// RotaryAndCacheWrite before it: q's rows hold Q, K and V as the QKV projection left them; the kernel rotates
// Q and each row's new K (RotaryAndCacheWrite's arithmetic), attends with them and writes the new K and V
// into the cache at slot_mapping[row] (none for a negative slot). q's rows are left as they are.
struct AttentionRotary {
  const int32_t* positions = nullptr;     // [num_tokens]
  const int32_t* slot_mapping = nullptr;  // [num_tokens]
  const float* inv_freq = nullptr;        // [head_dim / 2]
  __nv_bfloat16* k_cache = nullptr;       // the caches PagedAttention reads, written at the new slots
  __nv_bfloat16* v_cache = nullptr;
};

// Whether PagedAttentionWithRotary takes a launch of `shape`: decode batches whose attention runs one block
// per row and KV head (from 17 rows, head_dim 64; kernels/paged_attention.cu); for others, run
// RotaryAndCacheWrite, then PagedAttention.
bool PagedAttentionRotates(const AttentionShape& shape);

// PagedAttention over unrotated rows (AttentionRotary), for launches where PagedAttentionRotates(shape).
void PagedAttentionWithRotary(const __nv_bfloat16* q, const __nv_bfloat16* k_cache,
                              const __nv_bfloat16* v_cache, const int32_t* block_tables,
                              const int32_t* token_seq, const int32_t* context_lens, __nv_bfloat16* out,
                              float* workspace, size_t workspace_bytes, const AttentionShape& shape,
                              const AttentionRotary& rotary, cudaStream_t stream);

}  // namespace doze::kernels
