#include "worker/engine/batch_builder.h"

#include <algorithm>

namespace doze {

Batch BuildBatch(absl::Span<const ScheduledChunk> chunks, int block_size) {
  Batch batch;
  BatchMetadata& m = batch.metadata;
  int max_blocks = 0;
  for (const ScheduledChunk& chunk : chunks) {
    max_blocks = std::max(max_blocks, static_cast<int>(chunk.seq->block_table().size()));
  }
  m.max_blocks_per_seq = max_blocks;
  m.block_tables.assign(chunks.size() * max_blocks, -1);
  m.query_start_loc.push_back(0);
  for (size_t s = 0; s < chunks.size(); ++s) {
    const Sequence& seq = *chunks[s].seq;
    const std::vector<int32_t>& table = seq.block_table();
    const int begin = seq.num_computed_tokens();
    const int end = begin + chunks[s].num_new_tokens;
    for (int pos = begin; pos < end; ++pos) {
      m.token_ids.push_back(seq.token_ids()[pos]);
      m.positions.push_back(pos);
      m.slot_mapping.push_back(table[pos / block_size] * block_size + pos % block_size);
    }
    m.query_start_loc.push_back(m.num_tokens());
    m.seq_lens.push_back(end);
    std::copy(table.begin(), table.end(), m.block_tables.begin() + s * max_blocks);
    if (chunks[s].samples) {
      m.logits_indices.push_back(m.num_tokens() - 1);
      batch.sampled_seqs.push_back(chunks[s].seq);
    }
  }
  return batch;
}

}  // namespace doze
