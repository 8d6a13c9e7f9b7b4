#include "worker/engine/block_manager.h"

#include <algorithm>

#include "worker/common/logging.h"

namespace doze {

BlockManager::BlockManager(int num_blocks, int block_size, BlockHashFn hash_fn)
    : block_size_(block_size), hash_fn_(hash_fn), blocks_(num_blocks) {
  DOZE_CHECK(num_blocks > 0 && block_size > 0) << num_blocks << " blocks of " << block_size;
  for (int32_t i = 0; i < num_blocks; ++i) free_blocks_.push_back(i);
}

uint64_t BlockManager::BlockHash(Sequence& seq, int index) const {
  std::vector<uint64_t>& hashes = seq.block_hashes();
  while (static_cast<int>(hashes.size()) <= index) {
    int i = static_cast<int>(hashes.size());
    uint64_t parent = i == 0 ? 0 : hashes[i - 1];
    hashes.push_back(hash_fn_(parent, seq.token_ids().subspan(i * block_size_, block_size_)));
  }
  return hashes[index];
}

PrefixHit BlockManager::FindCachedPrefix(Sequence& seq) {
  PrefixHit hit;
  const int max_blocks = (seq.num_tokens() - 1) / block_size_;
  uint64_t parent_cache_id = 0;
  for (int i = 0; i < max_blocks; ++i) {
    auto it = hash_to_block_.find(BlockHash(seq, i));
    if (it == hash_to_block_.end()) break;
    const Block& block = blocks_[it->second];
    absl::Span<const int32_t> tokens = seq.token_ids().subspan(i * block_size_, block_size_);
    if (block.parent_cache_id != parent_cache_id ||
        !std::equal(tokens.begin(), tokens.end(), block.token_ids.begin(), block.token_ids.end())) {
      break;  // a hash collision: recompute rather than trust it
    }
    hit.block_ids.push_back(it->second);
    parent_cache_id = block.cache_id;
  }
  return hit;
}

bool BlockManager::CanAllocate(const PrefixHit& hit, int num_new_tokens) const {
  const int num_hit = static_cast<int>(hit.block_ids.size());
  int needed = BlocksFor(num_hit * block_size_ + num_new_tokens) - num_hit;
  // A hit block nobody holds leaves the evictable pool when taken.
  for (int32_t id : hit.block_ids) needed += blocks_[id].ref_count == 0 ? 1 : 0;
  return needed <= num_free_blocks();
}

void BlockManager::Allocate(const PrefixHit& hit, int num_new_tokens, Sequence& seq) {
  DOZE_CHECK(seq.block_table().empty()) << "sequence " << seq.id() << " already holds blocks";
  std::vector<int32_t>& table = seq.mutable_block_table();
  for (int32_t id : hit.block_ids) {
    Ref(id);
    table.push_back(id);
  }
  const int num_cached_tokens = static_cast<int>(hit.block_ids.size()) * block_size_;
  seq.set_num_computed_tokens(num_cached_tokens);
  seq.set_num_cached_tokens(num_cached_tokens);
  seq.set_num_committed_blocks(static_cast<int>(hit.block_ids.size()));
  AppendSlots(num_new_tokens, seq);
}

bool BlockManager::CanAppend(const Sequence& seq, int num_new_tokens) const {
  int needed =
      BlocksFor(seq.num_computed_tokens() + num_new_tokens) - static_cast<int>(seq.block_table().size());
  return needed <= num_free_blocks();
}

void BlockManager::AppendSlots(int num_new_tokens, Sequence& seq) {
  std::vector<int32_t>& table = seq.mutable_block_table();
  const int needed = BlocksFor(seq.num_computed_tokens() + num_new_tokens);
  while (static_cast<int>(table.size()) < needed) table.push_back(TakeBlock());
}

void BlockManager::Free(Sequence& seq) {
  std::vector<int32_t>& table = seq.mutable_block_table();
  for (auto it = table.rbegin(); it != table.rend(); ++it) {
    Block& block = blocks_[*it];
    DOZE_CHECK(block.ref_count > 0) << "block " << *it << " freed twice";
    if (--block.ref_count > 0) continue;
    if (block.cached) {
      block.evictable_pos = evictable_.insert(evictable_.end(), *it);
    } else {
      free_blocks_.push_back(*it);
    }
  }
  table.clear();
  seq.set_num_computed_tokens(0);
  seq.set_num_committed_blocks(0);
}

void BlockManager::CacheFullBlocks(Sequence& seq) {
  const std::vector<int32_t>& table = seq.block_table();
  const int num_full = seq.num_computed_tokens() / block_size_;
  for (int i = seq.num_committed_blocks(); i < num_full; ++i) {
    Block& block = blocks_[table[i]];
    if (!block.cached) {
      // Only a chain of registered blocks proves which prefix a block's KV was computed on.
      if (i > 0 && !blocks_[table[i - 1]].cached) return;
      const uint64_t hash = BlockHash(seq, i);
      if (!hash_to_block_.try_emplace(hash, table[i]).second) return;  // an equal block is cached already
      block.cached = true;
      block.hash = hash;
      block.cache_id = next_cache_id_++;
      block.parent_cache_id = i == 0 ? 0 : blocks_[table[i - 1]].cache_id;
      auto tokens = seq.token_ids().subspan(i * block_size_, block_size_);
      block.token_ids.assign(tokens.begin(), tokens.end());
    }
    seq.set_num_committed_blocks(i + 1);
  }
}

int32_t BlockManager::TakeBlock() {
  int32_t id;
  if (!free_blocks_.empty()) {
    id = free_blocks_.front();
    free_blocks_.pop_front();
  } else {
    DOZE_CHECK(!evictable_.empty()) << "KV pool exhausted; the scheduler must check first";
    id = evictable_.front();
    Evict(id);
  }
  blocks_[id].ref_count = 1;
  return id;
}

void BlockManager::Evict(int32_t block_id) {
  Block& block = blocks_[block_id];
  evictable_.erase(block.evictable_pos);
  hash_to_block_.erase(block.hash);
  block.cached = false;
  block.token_ids.clear();
}

void BlockManager::Ref(int32_t block_id) {
  Block& block = blocks_[block_id];
  if (block.ref_count == 0) {
    DOZE_CHECK(block.cached) << "only cached blocks are shared; block " << block_id << " is free";
    evictable_.erase(block.evictable_pos);
  }
  ++block.ref_count;
}

}  // namespace doze
