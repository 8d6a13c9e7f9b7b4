// A step's int32 inputs (token ids, positions, slots, block tables...) from pinned host memory to the
// device, read by a kernel over the host bus instead of a copy-engine transfer, with two jobs folded in: the
// token ids of rows scheduled before the previous step's tokens reached the host are taken from those tokens
// on the device, and those tokens are written to pinned host memory for the host to read; optionally a third,
// the rows' embeddings (EmbeddingGather). At a decode step's boundary this one kernel replaces a
// host-to-device copy, a kernel and a device-to-host copy (~20 us on the H100: kernels/PERF_NOTES.md,
// fourteenth session).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace doze::kernels {

// ints[i] = host_ints[i] for i < num_ints, except the token ids ints[r], r < num_tokens, whose source
// s = host_ints[sources_offset + r] is not negative: ints[r] = previous[s]. Then published[i] = previous[i]
// for i < num_published. host_ints and published are pinned host memory (reached through unified
// addressing); sources_offset < 0: no sources. Launched with programmatic dependent launch: the host reads
// happen before the wait on the previous kernel, the writes after it.
//
// With `gather` set the kernel also writes the rows' embeddings, gather.out[r] = gather.table[ints[r]] for
// r < num_tokens (GatherRows' job, one kernel boundary fewer), and lets the next kernel launch only at its
// end, so that a kernel launched after it with programmatic dependent launch may read `ints` before its
// wait.
struct EmbeddingGather {
  const __nv_bfloat16* table = nullptr;  // [vocab, width] or nullptr: no gather
  __nv_bfloat16* out = nullptr;          // [num_tokens, width]
  int width = 0;                         // a multiple of 8
};
void StageStepInputs(const int32_t* host_ints,  // [num_ints], pinned host memory
                     int32_t* ints,             // [num_ints]
                     int num_ints, int num_tokens, int sources_offset,
                     const int32_t* previous,  // [previous step's sampled rows] or nullptr
                     int32_t* published,       // [num_published], pinned host memory, or nullptr
                     int num_published, cudaStream_t stream, const EmbeddingGather& gather = {});

}  // namespace doze::kernels
