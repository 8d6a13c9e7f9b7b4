#include "worker/engine/scheduler.h"

#include <algorithm>

#include "worker/common/logging.h"

namespace doze {

Scheduler::Scheduler(SchedulerConfig config, BlockManager* block_manager)
    : config_(config), block_manager_(block_manager) {}

void Scheduler::Add(Sequence* seq) {
  seq->set_status(SequenceStatus::kWaiting);
  waiting_.push_back(seq);
}

SchedulerOutput Scheduler::Schedule() {
  SchedulerOutput out;
  int budget = config_.max_num_batched_tokens;
  ScheduleRunning(out, budget);
  // A step that had to preempt is short of blocks; admitting now would only preempt again next step.
  if (out.preempted.empty()) AdmitWaiting(out, budget);
  return out;
}

void Scheduler::ScheduleRunning(SchedulerOutput& out, int& budget) {
  // Decodes first, then prefill chunks, each in admission order. A copy, because preemption shrinks running_.
  order_.clear();
  for (Sequence* seq : running_) {
    if (seq->num_pending_tokens() == 1) order_.push_back(seq);
  }
  for (Sequence* seq : running_) {
    if (seq->num_pending_tokens() != 1) order_.push_back(seq);
  }
  out.chunks.reserve(running_.size() + 1);
  for (Sequence* seq : order_) {
    if (seq->status() != SequenceStatus::kRunning || budget == 0) continue;  // preempted earlier this step
    if (seq->final_token_pending()) continue;  // finishes when its token in flight arrives
    DOZE_CHECK(seq->num_pending_tokens() > 0) << "sequence " << seq->id() << " has nothing to compute";
    const int num_new_tokens = std::min(seq->num_pending_tokens(), budget);
    if (!MakeRoom(seq, num_new_tokens, out, budget)) continue;
    block_manager_->AppendSlots(num_new_tokens, *seq);
    out.chunks.push_back({seq, num_new_tokens, num_new_tokens == seq->num_pending_tokens()});
    budget -= num_new_tokens;
  }
}

void Scheduler::AdmitWaiting(SchedulerOutput& out, int& budget) {
  while (!waiting_.empty() && budget > 0 && static_cast<int>(running_.size()) < config_.max_num_seqs) {
    Sequence* seq = waiting_.front();
    PrefixHit hit = block_manager_->FindCachedPrefix(*seq);
    const int num_hit_tokens = static_cast<int>(hit.block_ids.size()) * block_manager_->block_size();
    const int num_new_tokens = std::min(seq->num_tokens() - num_hit_tokens, budget);
    if (!block_manager_->CanAllocate(hit, num_new_tokens)) break;  // FCFS: nobody overtakes the head
    waiting_.pop_front();
    block_manager_->Allocate(hit, num_new_tokens, *seq);
    if (seq->status() == SequenceStatus::kWaiting) seq->set_num_prompt_cached_tokens(num_hit_tokens);
    prefix_cache_queried_tokens_ += seq->num_tokens();
    prefix_cache_hit_tokens_ += num_hit_tokens;
    seq->set_status(SequenceStatus::kRunning);
    seq->set_admission_order(next_admission_order_++);
    running_.push_back(seq);
    out.chunks.push_back({seq, num_new_tokens, num_new_tokens == seq->num_pending_tokens()});
    budget -= num_new_tokens;
  }
}

bool Scheduler::MakeRoom(Sequence* seq, int num_new_tokens, SchedulerOutput& out, int& budget) {
  while (!block_manager_->CanAppend(*seq, num_new_tokens)) {
    Sequence* victim = running_.back();
    Preempt(victim, out, budget);
    if (victim == seq) return false;
  }
  return true;
}

void Scheduler::Preempt(Sequence* victim, SchedulerOutput& out, int& budget) {
  running_.pop_back();
  // The victim may have been given its chunk already this step (decodes go first): take it back.
  auto it =
      std::find_if(out.chunks.begin(), out.chunks.end(), [&](const auto& c) { return c.seq == victim; });
  if (it != out.chunks.end()) {
    budget += it->num_new_tokens;
    out.chunks.erase(it);
  }
  block_manager_->Free(*victim);
  victim->set_status(SequenceStatus::kPreempted);
  waiting_.push_front(victim);
  out.preempted.push_back(victim);
  ++num_preemptions_;
}

void Scheduler::OnStepComputed(const SchedulerOutput& output) {
  for (const ScheduledChunk& chunk : output.chunks) {
    if (chunk.seq->status() == SequenceStatus::kFinished) continue;  // ended while the step was in flight
    chunk.seq->set_num_computed_tokens(chunk.seq->num_computed_tokens() + chunk.num_new_tokens);
    block_manager_->CacheFullBlocks(*chunk.seq);
  }
}

void Scheduler::Remove(Sequence* seq) {
  if (auto it = std::find(running_.begin(), running_.end(), seq); it != running_.end()) running_.erase(it);
  if (auto it = std::find(waiting_.begin(), waiting_.end(), seq); it != waiting_.end()) waiting_.erase(it);
  if (!seq->block_table().empty()) block_manager_->Free(*seq);
  seq->set_status(SequenceStatus::kFinished);
}

}  // namespace doze
