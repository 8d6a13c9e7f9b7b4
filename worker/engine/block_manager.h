// The paged KV pool: which blocks each sequence holds, and the prefix cache of full blocks.
#pragma once

#include <cstdint>
#include <deque>
#include <list>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "worker/engine/prefix_hash.h"
#include "worker/engine/sequence.h"

namespace doze {

// The cached blocks a new (or preempted) sequence can reuse, found by BlockManager::FindCachedPrefix.
struct PrefixHit {
  std::vector<int32_t> block_ids;
};

// Hands out the runner's num_kv_blocks() blocks of block_size token slots. A block is free, held by sequences
// (ref count > 0), or cached but unreferenced. Full, computed blocks are cached under a hash chain (parent
// key + token ids); a hit is also checked token by token and against its parent's registration, so a hash
// collision can only miss, never hand out wrong KV. Cached blocks no sequence holds are evicted least
// recently released first, and only when the free list is empty.
class BlockManager {
 public:
  // The key of a full block from its parent's key and its token ids.
  using BlockHashFn = uint64_t (*)(uint64_t parent_hash, absl::Span<const int32_t> token_ids);

  // `hash_fn` is replaceable so tests can force collisions.
  BlockManager(int num_blocks, int block_size, BlockHashFn hash_fn = &HashBlockTokens);

  int block_size() const { return block_size_; }
  int num_blocks() const { return static_cast<int>(blocks_.size()); }
  // Blocks an allocation can take now: free plus cached-but-unreferenced.
  int num_free_blocks() const { return static_cast<int>(free_blocks_.size() + evictable_.size()); }
  // Blocks held by at least one sequence.
  int num_used_blocks() const { return num_blocks() - num_free_blocks(); }
  // Cached blocks (held or not).
  int num_cached_blocks() const { return static_cast<int>(hash_to_block_.size()); }
  // Blocks that hold `num_tokens` tokens.
  int BlocksFor(int num_tokens) const { return (num_tokens + block_size_ - 1) / block_size_; }

  // The longest run of cached full blocks that begins `seq`'s tokens. It never covers the last token: that
  // one must run through the model to produce logits.
  PrefixHit FindCachedPrefix(Sequence& seq);
  // Whether `hit` plus blocks for `num_new_tokens` more tokens can be taken now.
  bool CanAllocate(const PrefixHit& hit, int num_new_tokens) const;
  // Gives a sequence without blocks the hit blocks and room for num_new_tokens more; sets its computed and
  // cached token counts to the hit.
  void Allocate(const PrefixHit& hit, int num_new_tokens, Sequence& seq);
  // Whether a running sequence can get room for `num_new_tokens` tokens after its computed ones.
  bool CanAppend(const Sequence& seq, int num_new_tokens) const;
  // Grows the block table of a running sequence to hold num_computed_tokens + num_new_tokens tokens.
  void AppendSlots(int num_new_tokens, Sequence& seq);
  // Releases every block of `seq` (tail first, so the tail is evicted first) and resets its computed tokens.
  void Free(Sequence& seq);
  // Offers the sequence's newly full, computed blocks to the prefix cache. Call after the step that computed
  // them.
  void CacheFullBlocks(Sequence& seq);

 private:
  struct Block {
    int ref_count = 0;
    bool cached = false;
    uint64_t hash = 0;
    uint64_t cache_id = 0;         // unique per registration: a re-used block id is a new registration
    uint64_t parent_cache_id = 0;  // cache_id of the previous block of the prefix; 0 for the first block
    std::vector<int32_t> token_ids;
    std::list<int32_t>::iterator evictable_pos;  // valid while cached and unreferenced
  };

  // The prefix-cache key of full block `index` of `seq`, memoised in the sequence.
  uint64_t BlockHash(Sequence& seq, int index) const;
  // A free block (evicting the least recently released cached one when none is free), with ref count 1.
  int32_t TakeBlock();
  void Evict(int32_t block_id);
  void Ref(int32_t block_id);

  int block_size_;
  BlockHashFn hash_fn_;
  std::vector<Block> blocks_;
  std::deque<int32_t> free_blocks_;
  std::list<int32_t> evictable_;  // front: released longest ago
  absl::flat_hash_map<uint64_t, int32_t> hash_to_block_;
  uint64_t next_cache_id_ = 1;
};

}  // namespace doze
