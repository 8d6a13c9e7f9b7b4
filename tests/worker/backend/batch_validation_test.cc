#include "worker/backend/cpu/batch_validation.h"

#include <functional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/worker/backend/tiny_model.h"

namespace doze {
namespace {

using ::testing::HasSubstr;

constexpr BatchLimits kLimits{/*vocab_size=*/100, /*num_kv_blocks=*/8, /*block_size=*/4};

// A prefill of 6 tokens after 3 cached ones beside a decode step: valid.
BatchMetadata ValidBatch() {
  return testing::MakeBatch({{{1, 2, 3, 4, 5, 6}, 3, {5, 0, 7}, true}, {{9}, 4, {2, 6}, false}},
                            kLimits.block_size);
}

TEST(BatchValidationTest, AcceptsAValidBatch) { EXPECT_TRUE(ValidateBatch(ValidBatch(), kLimits).ok()); }

struct BadCase {
  std::string name;
  std::function<void(BatchMetadata&)> mutate;
  std::string message;  // a part of the expected error
};

TEST(BatchValidationTest, RejectsEachKindOfBadBatch) {
  const std::vector<BadCase> cases = {
      {"empty", [](BatchMetadata& b) { b = BatchMetadata{}; }, "empty batch"},
      {"short positions", [](BatchMetadata& b) { b.positions.pop_back(); }, "positions"},
      {"short slots", [](BatchMetadata& b) { b.slot_mapping.pop_back(); }, "slot_mapping"},
      {"query_start_loc size", [](BatchMetadata& b) { b.query_start_loc.pop_back(); }, "query_start_loc"},
      {"query_start_loc end", [](BatchMetadata& b) { b.query_start_loc.back() = 5; }, "query_start_loc"},
      {"query_start_loc decreasing", [](BatchMetadata& b) { b.query_start_loc[1] = 8; }, "query_start_loc"},
      {"block table size", [](BatchMetadata& b) { b.block_tables.pop_back(); }, "block_tables"},
      {"token id too large", [](BatchMetadata& b) { b.token_ids[2] = 100; }, "token_ids[2]"},
      {"negative token id", [](BatchMetadata& b) { b.token_ids[6] = -1; }, "token_ids[6]"},
      {"block outside pool", [](BatchMetadata& b) { b.block_tables[2] = 8; }, "block_tables[0][2]"},
      {"missing block", [](BatchMetadata& b) { b.block_tables[4] = -1; }, "block_tables[1][1]"},
      {"seq_len beyond table", [](BatchMetadata& b) { b.seq_lens[0] = 13; }, "seq_lens[0]"},
      {"seq_len below new tokens", [](BatchMetadata& b) { b.seq_lens[0] = 5; }, "sequence 0"},
      {"position gap", [](BatchMetadata& b) { b.positions[3] = 7; }, "positions[3]"},
      {"slot elsewhere", [](BatchMetadata& b) { b.slot_mapping[6] = 3; }, "slot_mapping[6]"},
      {"slot out of range", [](BatchMetadata& b) { b.slot_mapping[0] = 1 << 30; }, "slot_mapping[0]"},
      {"logits row", [](BatchMetadata& b) { b.logits_indices.back() = 7; }, "logits_indices"},
      {"negative logits row", [](BatchMetadata& b) { b.logits_indices[0] = -1; }, "logits_indices[0]"},
  };
  for (const BadCase& c : cases) {
    BatchMetadata batch = ValidBatch();
    c.mutate(batch);
    const absl::Status status = ValidateBatch(batch, kLimits);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.message)) << c.name;
  }
}

}  // namespace
}  // namespace doze
