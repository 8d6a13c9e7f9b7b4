#include "tests/worker/engine/fake_model_runner.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace doze {
namespace {

uint64_t Mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

}  // namespace

FakeModelRunner::FakeModelRunner(int vocab_size, int num_kv_blocks, int block_size,
                                 int max_position_embeddings)
    : block_size_(block_size), num_kv_blocks_(num_kv_blocks), kv_(num_kv_blocks * block_size, -1) {
  config_.vocab_size = vocab_size;
  config_.max_position_embeddings = max_position_embeddings;
}

std::vector<float> FakeModelRunner::LogitsAfter(absl::Span<const int32_t> context, int vocab_size) {
  uint64_t h = 0x243F6A8885A308D3ULL;
  for (int32_t id : context) h = Mix(h ^ static_cast<uint32_t>(id));
  std::vector<float> logits(vocab_size);
  for (int v = 0; v < vocab_size; ++v) logits[v] = static_cast<float>(Mix(h + v) % 1000) / 500.0f;  // [0, 2)
  logits[h % vocab_size] += 5.0f;
  return logits;
}

absl::Status FakeModelRunner::CheckShapes(const BatchMetadata& b) const {
  const int n = b.num_tokens();
  if (static_cast<int>(b.positions.size()) != n || static_cast<int>(b.slot_mapping.size()) != n ||
      static_cast<int>(b.query_start_loc.size()) != b.num_seqs() + 1 || b.query_start_loc.back() != n ||
      static_cast<int>(b.block_tables.size()) != b.num_seqs() * b.max_blocks_per_seq) {
    return absl::InternalError("batch arrays disagree in size");
  }
  if (!b.token_sources.empty()) return absl::InternalError("token sources need SubmitForwardAndSample");
  for (int i = 0; i < n; ++i) {
    if (b.token_ids[i] < 0 || b.token_ids[i] >= config_.vocab_size) {
      return absl::InternalError(
          absl::StrCat("row ", i, ": token id ", b.token_ids[i], " outside the vocabulary"));
    }
    if (b.slot_mapping[i] < 0 || b.slot_mapping[i] >= static_cast<int>(kv_.size())) {
      return absl::InternalError(absl::StrCat("row ", i, ": slot ", b.slot_mapping[i], " outside the pool"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> FakeModelRunner::ReadContext(const BatchMetadata& b, int s,
                                                                  int length) const {
  std::vector<int32_t> context;
  const int32_t* table = b.block_table(s);
  for (int pos = 0; pos < length; ++pos) {
    const int block = pos / block_size_;
    if (block >= b.max_blocks_per_seq || table[block] < 0) {
      return absl::InternalError(absl::StrCat("sequence ", s, ": no block for position ", pos));
    }
    const int32_t token = kv_[table[block] * block_size_ + pos % block_size_];
    if (token < 0)
      return absl::InternalError(absl::StrCat("sequence ", s, ": position ", pos, " never written"));
    context.push_back(token);
  }
  return context;
}

absl::StatusOr<LogitsView> FakeModelRunner::Forward(const BatchMetadata& b) {
  if (absl::Status status = CheckShapes(b); !status.ok()) return status;
  for (int i = 0; i < b.num_tokens(); ++i) kv_[b.slot_mapping[i]] = b.token_ids[i];
  logits_.clear();
  for (int row : b.logits_indices) {
    const int s = static_cast<int>(std::upper_bound(b.query_start_loc.begin(), b.query_start_loc.end(), row) -
                                   b.query_start_loc.begin()) -
                  1;
    if (b.positions[row] + 1 > b.seq_lens[s]) return absl::InternalError("logits row beyond its sequence");
    absl::StatusOr<std::vector<int32_t>> context = ReadContext(b, s, b.positions[row] + 1);
    if (!context.ok()) return context.status();
    std::vector<float> row_logits = LogitsAfter(*context, config_.vocab_size);
    logits_.insert(logits_.end(), row_logits.begin(), row_logits.end());
  }
  num_computed_tokens_ += b.num_tokens();
  ++num_forward_calls_;
  max_batch_tokens_ = std::max(max_batch_tokens_, b.num_tokens());
  return LogitsView{logits_.data(), b.num_logits(), config_.vocab_size};
}

}  // namespace doze
