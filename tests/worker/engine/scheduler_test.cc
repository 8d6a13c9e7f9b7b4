#include "worker/engine/scheduler.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace doze {
namespace {

using ::testing::ElementsAreArray;

constexpr int kBlockSize = 4;

// A request of the table: when it arrives and how long it is.
struct SeqSpec {
  int arrival_step;
  int prompt_len;
  int max_tokens;
  // First prompt token; equal bases give equal prompts (default: distinct per sequence).
  int prompt_base = -1;
};

// The expected outcome of Schedule() at one step. Sequences are named by their 1-based index in the spec
// list.
struct StepRow {
  std::vector<std::pair<int, int>> chunks;  // (sequence, new tokens), in schedule order
  std::vector<int> running;
  std::vector<int> waiting;
  std::vector<int> preempted;
  int used_blocks;
};

// Drives a Scheduler like the engine does, with a model that always "samples" token 7, and checks each step
// against the table. A sequence finishes after max_tokens outputs.
void RunTable(SchedulerConfig config, int num_blocks, const std::vector<SeqSpec>& specs,
              const std::vector<StepRow>& table) {
  BlockManager block_manager(num_blocks, kBlockSize);
  Scheduler scheduler(config, &block_manager);
  std::vector<std::unique_ptr<Sequence>> seqs;
  for (size_t i = 0; i < specs.size(); ++i) {
    std::vector<int32_t> prompt(specs[i].prompt_len);
    const int base = specs[i].prompt_base >= 0 ? specs[i].prompt_base : 100 * static_cast<int>(i + 1);
    for (int j = 0; j < specs[i].prompt_len; ++j) prompt[j] = base + j;
    SamplingParams params;
    params.max_tokens = specs[i].max_tokens;
    seqs.push_back(std::make_unique<Sequence>(i + 1, std::move(prompt), params, 0));
  }
  auto ids = [](const auto& queue) {
    std::vector<int> out;
    for (const Sequence* s : queue) out.push_back(static_cast<int>(s->id()));
    return out;
  };
  for (size_t step = 0; step < table.size(); ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    for (size_t i = 0; i < specs.size(); ++i) {
      if (specs[i].arrival_step == static_cast<int>(step)) scheduler.Add(seqs[i].get());
    }
    SchedulerOutput out = scheduler.Schedule();
    std::vector<std::pair<int, int>> chunks;
    for (const ScheduledChunk& c : out.chunks) chunks.emplace_back(c.seq->id(), c.num_new_tokens);
    const StepRow& row = table[step];
    EXPECT_THAT(chunks, ElementsAreArray(row.chunks));
    EXPECT_THAT(ids(scheduler.running()), ElementsAreArray(row.running));
    EXPECT_THAT(ids(scheduler.waiting()), ElementsAreArray(row.waiting));
    EXPECT_THAT(ids(out.preempted), ElementsAreArray(row.preempted));
    EXPECT_EQ(block_manager.num_used_blocks(), row.used_blocks);
    scheduler.OnStepComputed(out);
    for (const ScheduledChunk& c : out.chunks) {
      if (!c.samples) continue;
      c.seq->AppendToken(7);
      if (c.seq->num_output_tokens() == c.seq->params().max_tokens) scheduler.Remove(c.seq);
    }
  }
  EXPECT_FALSE(scheduler.HasUnfinished());
  EXPECT_EQ(block_manager.num_used_blocks(), 0);
}

TEST(SchedulerTableTest, ChunkedPrefillSharesTheBudgetWithDecodes) {
  // Budget 8: sequence 2's 10-token prompt runs in chunks of what sequence 1's decode leaves; sequence 3 is
  // admitted with the 2 tokens left over and finishes its prompt next step.
  RunTable({.max_num_batched_tokens = 8, .max_num_seqs = 4}, 100, {{0, 3, 3}, {0, 10, 2}, {1, 6, 1}},
           {
               // chunks                 running    waiting preempted used
               {{{1, 3}, {2, 5}}, {1, 2}, {}, {}, 3},
               {{{1, 1}, {2, 5}, {3, 2}}, {1, 2, 3}, {}, {}, 5},
               {{{1, 1}, {2, 1}, {3, 4}}, {1, 2, 3}, {}, {}, 7},
           });
}

TEST(SchedulerTableTest, MaxNumSeqsHoldsTheRestInTheWaitingQueue) {
  RunTable({.max_num_batched_tokens = 64, .max_num_seqs = 2}, 100, {{0, 2, 2}, {0, 2, 2}, {0, 2, 2}},
           {
               {{{1, 2}, {2, 2}}, {1, 2}, {3}, {}, 2},
               {{{1, 1}, {2, 1}}, {1, 2}, {3}, {}, 2},
               {{{3, 2}}, {3}, {}, {}, 1},
               {{{3, 1}}, {3}, {}, {}, 1},
           });
}

TEST(SchedulerTableTest, PreemptsTheNewestAndRecomputesItLater) {
  // 4 blocks of 4 tokens; each sequence needs 3 blocks (6 prompt + 6 output tokens) but both fit only while
  // short. At step 3 sequence 1 needs a third block: sequence 2 (admitted last) is preempted. It waits until
  // sequence 1 finishes, then recomputes its 6 prompt + 3 generated tokens, the first block of which is still
  // cached.
  RunTable({.max_num_batched_tokens = 64, .max_num_seqs = 4}, 4, {{0, 6, 6}, {0, 6, 6}},
           {
               {{{1, 6}, {2, 6}}, {1, 2}, {}, {}, 4},
               {{{1, 1}, {2, 1}}, {1, 2}, {}, {}, 4},
               {{{1, 1}, {2, 1}}, {1, 2}, {}, {}, 4},
               {{{1, 1}}, {1}, {2}, {2}, 3},
               {{{1, 1}}, {1}, {2}, {}, 3},  // 2 needs 3 blocks, 1 is free
               {{{1, 1}}, {1}, {2}, {}, 3},
               {{{2, 5}}, {2}, {}, {}, 3},  // 9 tokens, 4 from the prefix cache
               {{{2, 1}}, {2}, {}, {}, 3},
               {{{2, 1}}, {2}, {}, {}, 3},
           });
}

TEST(SchedulerTableTest, RepeatedPromptRunsOnlyItsUncachedTail) {
  // Two full blocks of the 9-token prompt are cached after the first request; the second computes 1 token.
  RunTable({.max_num_batched_tokens = 64, .max_num_seqs = 4}, 100, {{0, 9, 1, 10}, {1, 9, 1, 10}},
           {
               {{{1, 9}}, {1}, {}, {}, 3},
               {{{2, 1}}, {2}, {}, {}, 3},
           });
}

TEST(SchedulerTableTest, OnlyFullBlocksBeforeTheLastPromptTokenHit) {
  // An 8-token prompt fills two blocks, but its last token must run to give logits: only the first block
  // hits.
  RunTable({.max_num_batched_tokens = 64, .max_num_seqs = 4}, 100, {{0, 8, 1, 10}, {1, 8, 1, 10}},
           {
               {{{1, 8}}, {1}, {}, {}, 2},
               {{{2, 4}}, {2}, {}, {}, 2},
           });
}

}  // namespace
}  // namespace doze
