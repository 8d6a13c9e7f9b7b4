// The hash chain that names a full KV block in the prefix cache.
#pragma once

#include <cstdint>

#include "absl/types/span.h"

namespace doze {

// XXH64 of `size` bytes with `seed`; stable across processes and machines (unlike absl::Hash).
uint64_t XxHash64(const void* data, size_t size, uint64_t seed);

// The key of a full block: XXH64 of its token ids (little-endian int32), seeded with the parent block's key
// (0 for the first block), so equal keys mean, barring a collision, an equal whole prefix.
uint64_t HashBlockTokens(uint64_t parent_hash, absl::Span<const int32_t> token_ids);

}  // namespace doze
