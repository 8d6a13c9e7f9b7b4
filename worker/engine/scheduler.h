// Decides, each step, which sequences run and how many of their tokens: continuous batching with chunked
// prefill.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "worker/engine/block_manager.h"
#include "worker/engine/sequence.h"

namespace doze {

struct SchedulerConfig {
  // Tokens run through the model in one step, all sequences together.
  int max_num_batched_tokens = 8192;
  // Sequences running at once.
  int max_num_seqs = 64;
};

// One sequence's share of a step: its tokens [num_computed_tokens, num_computed_tokens + num_new_tokens).
struct ScheduledChunk {
  Sequence* seq = nullptr;
  int num_new_tokens = 0;
  // The chunk reaches the sequence's last token, so the step samples its next one.
  bool samples = false;
};

struct SchedulerOutput {
  std::vector<ScheduledChunk> chunks;  // decodes first, then prefill chunks
  std::vector<Sequence*> preempted;    // lost their blocks this step; recomputed later
  bool empty() const { return chunks.empty(); }
};

// Two queues: waiting (FCFS; preempted sequences go back to its front) and running (in admission order). Each
// step gives every running sequence that decodes its one token first, then prefill chunks of running
// sequences, then admits waiting ones, all within max_num_batched_tokens, so a long prompt is cut into chunks
// and never stalls decoding. When blocks run out, the most recently admitted running sequence is preempted:
// its blocks are freed and it is recomputed later from its prompt and the tokens it generated so far. The
// oldest running sequence can thus always proceed, and a sequence that fits the pool alone is always admitted
// eventually.
class Scheduler {
 public:
  Scheduler(SchedulerConfig config, BlockManager* block_manager);

  // Queues a new sequence at the back of the waiting queue.
  void Add(Sequence* seq);
  // Picks this step's chunks, allocating their KV slots (and preempting when the pool is short).
  SchedulerOutput Schedule();
  // After the model ran the step: advances each chunk's computed tokens and caches the blocks it filled
  // (sequences finished since the step was scheduled are skipped).
  void OnStepComputed(const SchedulerOutput& output);
  // Drops a sequence (finished or aborted) from its queue and frees its blocks at once.
  void Remove(Sequence* seq);

  const std::deque<Sequence*>& waiting() const { return waiting_; }
  const std::vector<Sequence*>& running() const { return running_; }
  bool HasUnfinished() const { return !waiting_.empty() || !running_.empty(); }
  const SchedulerConfig& config() const { return config_; }

  int64_t num_preemptions() const { return num_preemptions_; }
  // Tokens looked up in the prefix cache at admission, and those found there.
  int64_t prefix_cache_queried_tokens() const { return prefix_cache_queried_tokens_; }
  int64_t prefix_cache_hit_tokens() const { return prefix_cache_hit_tokens_; }

 private:
  void ScheduleRunning(SchedulerOutput& out, int& budget);
  void AdmitWaiting(SchedulerOutput& out, int& budget);
  // Preempts from the back of the running queue until `seq` can take `num_new_tokens`; false if `seq` itself
  // went.
  bool MakeRoom(Sequence* seq, int num_new_tokens, SchedulerOutput& out, int& budget);
  void Preempt(Sequence* victim, SchedulerOutput& out, int& budget);

  SchedulerConfig config_;
  BlockManager* block_manager_;
  std::deque<Sequence*> waiting_;
  std::vector<Sequence*> running_;
  std::vector<Sequence*> order_;  // ScheduleRunning's visiting order, kept to reuse its memory
  uint64_t next_admission_order_ = 1;
  int64_t num_preemptions_ = 0;
  int64_t prefix_cache_queried_tokens_ = 0;
  int64_t prefix_cache_hit_tokens_ = 0;
};

}  // namespace doze
