// What a split decode attention leaves for its consumer to merge (PagedAttentionUnmerged), in place of the
// merged rows the combine kernel would have written.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace doze::kernels {

// Split key ranges are multiples of this many keys (the attention's 16-key steps).
constexpr int kAttentionPartitionAlign = 16;
// The most splits of one row's key range.
constexpr int kAttentionMaxSplits = 64;

struct AttentionPartials {
  // [num_tokens * num_q_heads * splits, head_dim] normalised partial outputs, then
  // [num_tokens * num_q_heads * splits, 2] their (max in log2 units, sum); read when splits > 1.
  const float* workspace = nullptr;
  // [num_tokens, num_q_heads * head_dim]: the attention's output itself, read when splits == 1.
  const __nv_bfloat16* out = nullptr;
  const int32_t* context_lens = nullptr;  // [num_tokens] keys each row attends (host metadata)
  int num_tokens = 0, num_q_heads = 0, head_dim = 0;
  int splits = 1;         // the grid's splits of every row's key range
  int min_partition = 0;  // the fewest keys a split takes (RowPartition)
};

}  // namespace doze::kernels
