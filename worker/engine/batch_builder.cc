#include "worker/engine/batch_builder.h"

#include <algorithm>

namespace doze {

void BuildBatch(absl::Span<const ScheduledChunk> chunks, int block_size, Batch* batch) {
  int num_tokens = 0, max_blocks = 0;
  for (const ScheduledChunk& chunk : chunks) {
    num_tokens += chunk.num_new_tokens;
    max_blocks = std::max(max_blocks, static_cast<int>(chunk.seq->block_table().size()));
  }
  const int num_seqs = static_cast<int>(chunks.size());
  BatchMetadata& m = batch->metadata;
  // Every element below is overwritten; resize only keeps last step's capacity.
  m.token_ids.resize(num_tokens);
  m.token_sources.clear();
  m.positions.resize(num_tokens);
  m.slot_mapping.resize(num_tokens);
  m.query_start_loc.resize(num_seqs + 1);
  m.seq_lens.resize(num_seqs);
  m.max_blocks_per_seq = max_blocks;
  m.block_tables.resize(static_cast<size_t>(num_seqs) * max_blocks);
  m.logits_indices.clear();
  batch->sampled_seqs.clear();
  m.query_start_loc[0] = 0;
  int row = 0;
  for (int s = 0; s < num_seqs; ++s) {
    const Sequence& seq = *chunks[s].seq;
    const std::vector<int32_t>& table = seq.block_table();
    const absl::Span<const int32_t> token_ids = seq.token_ids();
    const int begin = seq.num_computed_tokens();
    const int end = begin + chunks[s].num_new_tokens;
    for (int pos = begin; pos < end; ++pos, ++row) {
      m.token_ids[row] = token_ids[pos];
      if (pos == seq.num_tokens() - 1 && seq.pending_sample_row() >= 0) {
        m.token_sources.resize(num_tokens, -1);  // only steps that read pending tokens carry the array
        m.token_sources[row] = seq.pending_sample_row();
      }
      m.positions[row] = pos;
      m.slot_mapping[row] = table[pos / block_size] * block_size + pos % block_size;
    }
    m.query_start_loc[s + 1] = row;
    m.seq_lens[s] = end;
    int32_t* table_row = m.block_tables.data() + static_cast<size_t>(s) * max_blocks;
    std::fill(std::copy(table.begin(), table.end(), table_row), table_row + max_blocks, -1);
    if (chunks[s].samples) {
      m.logits_indices.push_back(row - 1);
      batch->sampled_seqs.push_back(chunks[s].seq);
    }
  }
}

}  // namespace doze
