#include "worker/tokenizer/bpe_model.h"

#include <queue>

#include "absl/strings/str_cat.h"
#include "worker/tokenizer/byte_level.h"

namespace doze {
namespace {

uint64_t PairKey(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

// A pending merge of the symbol at `pos` with its right neighbour; `new_id` tells stale entries apart.
struct Candidate {
  int32_t rank;
  int32_t pos;
  int32_t new_id;
  // Orders a std::priority_queue as a min-heap on (rank, pos), exactly as HF's BinaryHeap of merges.
  bool operator<(const Candidate& other) const {
    return rank != other.rank ? rank > other.rank : pos > other.pos;
  }
};

// One symbol of a word being merged, in a doubly linked list over the initial byte positions.
struct Symbol {
  int32_t id;
  int32_t prev;
  int32_t next;
  bool alive;
};

// One symbol per byte, linked in order. Bytes whose character is missing from the vocabulary are dropped, as
// HF's BPE does without an unknown token.
std::vector<Symbol> InitialSymbols(std::string_view word, const std::array<int32_t, 256>& byte_ids) {
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  for (char byte : word) {
    int32_t id = byte_ids[static_cast<unsigned char>(byte)];
    if (id < 0) continue;
    auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, index - 1, index + 1, true});
  }
  if (!symbols.empty()) symbols.back().next = -1;
  return symbols;
}

}  // namespace

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::Create(
    absl::flat_hash_map<std::string, int32_t> vocab,
    const std::vector<std::pair<std::string, std::string>>& merges) {
  std::unique_ptr<BpeModel> model(new BpeModel());
  model->vocab_ = std::move(vocab);
  for (int b = 0; b < 256; ++b) {
    auto it = model->vocab_.find(ByteLevel::Encode(std::string(1, static_cast<char>(b))));
    model->byte_ids_[b] = it == model->vocab_.end() ? -1 : it->second;
  }
  model->merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    auto left_it = model->vocab_.find(left);
    auto right_it = model->vocab_.find(right);
    auto merged_it = model->vocab_.find(absl::StrCat(left, right));
    if (left_it == model->vocab_.end() || right_it == model->vocab_.end() ||
        merged_it == model->vocab_.end()) {
      return absl::InvalidArgumentError(absl::StrCat("model.merges[", rank, "]: \"", left, " ", right,
                                                     "\" names a token not in the vocabulary"));
    }
    // A repeated pair keeps its last rank, as HF's map from pairs to ranks does.
    model->merges_.insert_or_assign(PairKey(left_it->second, right_it->second),
                                    Merge{static_cast<int32_t>(rank), merged_it->second});
  }
  return model;
}

std::optional<BpeModel::Merge> BpeModel::FindMerge(int32_t left, int32_t right) const {
  auto it = merges_.find(PairKey(left, right));
  if (it == merges_.end()) return std::nullopt;
  return it->second;
}

std::optional<int32_t> BpeModel::TokenToId(std::string_view token) const {
  auto it = vocab_.find(absl::string_view(token.data(), token.size()));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

void BpeModel::EncodeWord(std::string_view word, std::vector<int32_t>* ids) const {
  if (word.size() == 1) {
    int32_t id = byte_ids_[static_cast<unsigned char>(word[0])];
    if (id >= 0) ids->push_back(id);
    return;
  }
  bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    absl::ReaderMutexLock lock(&cache_mu_);
    auto it = cache_.find(absl::string_view(word.data(), word.size()));
    if (it != cache_.end()) {
      ids->insert(ids->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  size_t first = ids->size();
  MergeWord(word, ids);
  if (cacheable) {
    absl::MutexLock lock(&cache_mu_);
    if (cache_.size() < kCacheCapacity) {
      cache_.try_emplace(std::string(word), ids->begin() + static_cast<ptrdiff_t>(first), ids->end());
    }
  }
}

void BpeModel::MergeWord(std::string_view word, std::vector<int32_t>* ids) const {
  std::vector<Symbol> symbols = InitialSymbols(word, byte_ids_);
  if (symbols.empty()) return;
  std::priority_queue<Candidate> queue;
  for (size_t i = 0; i + 1 < symbols.size(); ++i) {
    if (auto merge = FindMerge(symbols[i].id, symbols[i + 1].id)) {
      queue.push({merge->rank, static_cast<int32_t>(i), merge->new_id});
    }
  }
  while (!queue.empty()) {
    Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    auto merge = FindMerge(left.id, right.id);
    if (!merge || merge->new_id != top.new_id) continue;  // A stale entry: the pair has changed since.
    left.id = merge->new_id;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = top.pos;
    if (left.prev >= 0) {
      if (auto m = FindMerge(symbols[left.prev].id, left.id)) queue.push({m->rank, left.prev, m->new_id});
    }
    if (left.next >= 0) {
      if (auto m = FindMerge(left.id, symbols[left.next].id)) queue.push({m->rank, top.pos, m->new_id});
    }
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].next) ids->push_back(symbols[i].id);
}

}  // namespace doze
