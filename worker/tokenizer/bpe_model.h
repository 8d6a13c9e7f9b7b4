// Byte-level BPE as Hugging Face's `tokenizers` BPE model applies it (no dropout, no unknown token, no
// continuing-subword prefix): a pre-tokenized word's bytes start as one token each and the adjacent pair with
// the lowest merge rank, leftmost on ties, is merged until no pair has a merge.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace doze {

// The BPE model: vocabulary, merge ranks and a cache of encoded words. Thread-safe.
class BpeModel {
 public:
  // Builds the model from the vocabulary (byte-level spelling to id) and the merges in rank order; fails when
  // a merge names a token (or a merged token) missing from the vocabulary.
  static absl::StatusOr<std::unique_ptr<BpeModel>> Create(
      absl::flat_hash_map<std::string, int32_t> vocab,
      const std::vector<std::pair<std::string, std::string>>& merges);

  // Appends the ids of one pre-tokenized word, given as raw bytes, to `ids`.
  void EncodeWord(std::string_view word, std::vector<int32_t>* ids) const;

  // Returns the id of a token given in its byte-level spelling.
  std::optional<int32_t> TokenToId(std::string_view token) const;

  // Returns the vocabulary: byte-level spelling to id.
  const absl::flat_hash_map<std::string, int32_t>& vocab() const { return vocab_; }

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };

  BpeModel() = default;
  std::optional<Merge> FindMerge(int32_t left, int32_t right) const;
  void MergeWord(std::string_view word, std::vector<int32_t>* ids) const;

  // Words longer than this are not cached (HF uses the same bound); the cache stops growing when full.
  static constexpr size_t kMaxCachedWordBytes = 256;
  static constexpr size_t kCacheCapacity = 1 << 18;

  absl::flat_hash_map<std::string, int32_t> vocab_;
  std::array<int32_t, 256> byte_ids_{};          // -1 when the byte's character is not in the vocabulary.
  absl::flat_hash_map<uint64_t, Merge> merges_;  // Key: left id << 32 | right id.
  mutable absl::Mutex cache_mu_;
  mutable absl::flat_hash_map<std::string, std::vector<int32_t>> cache_ ABSL_GUARDED_BY(cache_mu_);
};

}  // namespace doze
