// Flattens the scheduler's chunks into the runner's BatchMetadata: the one place where Sequences become
// arrays.
#pragma once

#include <vector>

#include "absl/types/span.h"
#include "worker/engine/batch_metadata.h"
#include "worker/engine/scheduler.h"

namespace doze {

// A step's model input, and for each logits row the sequence it samples for.
struct Batch {
  BatchMetadata metadata;
  std::vector<Sequence*> sampled_seqs;  // [num_logits], sampled_seqs[i] owns logits row i
};

// Lays the chunks end to end into `batch`, replacing what it held (its vectors' memory is reused, so an
// engine keeps one Batch across steps). Each chunk's slots must already be allocated (Scheduler::Schedule
// does it).
void BuildBatch(absl::Span<const ScheduledChunk> chunks, int block_size, Batch* batch);

}  // namespace doze
