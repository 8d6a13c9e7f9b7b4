#include "worker/engine/logits_processor.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "kernels/sample_uniform.h"

namespace doze {
namespace {

constexpr float kMasked = -std::numeric_limits<float>::infinity();

struct TokenWeight {
  int32_t id;
  float weight;
};

// Candidate search: logits are binned by their distance below the row's maximum, kBinsPerUnit bins per unit
// of logit; the last bin takes everything further down, masked tokens included. A bin index never falls as
// the logit grows, so "bin <= b" is always the set of the largest logits.
constexpr int kBinsPerUnit = 4;
constexpr int kNumBins = 256;

int BinOf(float logit, float max_logit) {
  const float distance = (max_logit - logit) * kBinsPerUnit;
  return distance < kNumBins - 1 ? static_cast<int>(distance) : kNumBins - 1;
}

// The lowest bin whose cumulative sum from bin 0 reaches `target` (the last bin if none does).
template <typename T>
int BinReaching(const std::array<T, kNumBins>& histogram, double target) {
  double cumulative = 0.0;
  for (int b = 0; b < kNumBins; ++b) {
    cumulative += histogram[b];
    if (cumulative >= target) return b;
  }
  return kNumBins - 1;
}

// Sorts ids by logit, largest first, ties by id.
void SortMostLikelyFirst(absl::Span<const float> logits, std::vector<int32_t>& ids) {
  std::sort(ids.begin(), ids.end(),
            [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
}

// The unmasked ids when they are few (after top-k), else nothing: the callers then scan the row.
std::vector<int32_t> SparseUnmaskedIds(absl::Span<const float> logits) {
  size_t count = 0;
  for (float logit : logits) count += logit != kMasked;
  std::vector<int32_t> ids;
  if (count * 8 > logits.size()) return ids;
  ids.reserve(count);
  for (size_t id = 0; id < logits.size(); ++id) {
    if (logits[id] != kMasked) ids.push_back(static_cast<int32_t>(id));
  }
  return ids;
}

// Masks every unmasked token after `last` in most-likely-first order (ties by id): over `sparse` when it
// holds the unmasked ids, else by one branch-free scan of the row.
void MaskAfter(int32_t last, absl::Span<const int32_t> sparse, absl::Span<float> logits) {
  const float last_value = logits[last];
  auto after = [&](float logit, int32_t id) {
    return logit < last_value || (logit == last_value && id > last);
  };
  for (int32_t id : sparse) logits[id] = after(logits[id], id) ? kMasked : logits[id];
  if (!sparse.empty()) return;
  for (size_t id = 0; id < logits.size(); ++id) {
    logits[id] = after(logits[id], static_cast<int32_t>(id)) ? kMasked : logits[id];
  }
}

// Calls f(id) for each unmasked id, in id order: over `sparse` when it holds them, else by scanning the row.
template <typename F>
void ForEachUnmasked(absl::Span<const float> logits, absl::Span<const int32_t> sparse, F f) {
  if (!sparse.empty()) {
    for (int32_t id : sparse) f(id);
    return;
  }
  for (size_t id = 0; id < logits.size(); ++id) {
    if (logits[id] != kMasked) f(static_cast<int32_t>(id));
  }
}

// How many of `order` (most likely first) top-p keeps: a token stays while the mass above it is below p.
// Returns 0 when the mass of all of `order` stays below p.
size_t TopPKeepCount(absl::Span<const float> logits, absl::Span<const int32_t> order, double log_z, float p) {
  double mass_above = 0.0;
  for (size_t keep = 0; keep < order.size(); ++keep) {
    if (mass_above >= p) return keep;
    mass_above += std::exp(logits[order[keep]] - log_z);
  }
  return mass_above >= p ? order.size() : 0;
}

// The largest logit that is not NaN, and whether there is one. Independent lanes the compiler turns into
// vector max instructions ((a < b ? b : a) is std::max), started at -infinity so that a NaN, never above a
// lane, is passed over wherever it lies.
struct ChunkMax {
  float value;
  bool any;
};
ChunkMax MaxNumber(absl::Span<const float> logits) {
  constexpr size_t kLanes = 16;
  std::array<float, kLanes> lanes;
  lanes.fill(-std::numeric_limits<float>::infinity());
  bool any = false;
  size_t i = 0;
  for (; i + kLanes <= logits.size(); i += kLanes) {
    for (size_t j = 0; j < kLanes; ++j) {
      lanes[j] = lanes[j] < logits[i + j] ? logits[i + j] : lanes[j];
      any |= logits[i + j] == logits[i + j];
    }
  }
  for (; i < logits.size(); ++i) {
    lanes[0] = lanes[0] < logits[i] ? logits[i] : lanes[0];
    any |= logits[i] == logits[i];
  }
  float value = lanes[0];
  for (float lane : lanes) value = lane > value ? lane : value;
  return {value, any};
}

}  // namespace

float MaxLogit(absl::Span<const float> logits) { return MaxNumber(logits).value; }

float KthLargest(absl::Span<const float> values, int k) {
  // Candidates above a threshold that only rises: whenever the buffer fills, it is cut back to its k largest
  // and the threshold becomes the k-th of them. Past the first fill most values fail one comparison.
  const size_t capacity = std::max<size_t>(4 * static_cast<size_t>(k), 4096);
  std::vector<float> buffer(values.begin(), values.begin() + std::min(capacity, values.size()));
  auto cut = [&] {
    std::nth_element(buffer.begin(), buffer.begin() + (k - 1), buffer.end(), std::greater<float>());
    buffer.resize(k);
    return buffer[k - 1];
  };
  float threshold = buffer.size() < values.size() ? cut() : 0.0f;
  for (size_t i = capacity; i < values.size(); ++i) {
    if (values[i] <= threshold) continue;
    buffer.push_back(values[i]);
    if (buffer.size() == capacity) threshold = cut();
  }
  return cut();
}

void ApplyLogitBias(const absl::flat_hash_map<int32_t, float>& logit_bias, absl::Span<float> logits) {
  for (const auto& [id, bias] : logit_bias) logits[id] += bias;
}

void ApplyRepetitionPenalty(float penalty, absl::Span<const int32_t> token_ids, absl::Span<float> logits) {
  if (penalty == 1.0f) return;
  absl::flat_hash_set<int32_t> seen;
  for (int32_t id : token_ids) {
    if (!seen.insert(id).second) continue;
    float& logit = logits[id];
    logit = logit > 0 ? logit / penalty : logit * penalty;
  }
}

void ApplyPresenceFrequencyPenalties(float presence, float frequency,
                                     const absl::flat_hash_map<int32_t, int>& counts,
                                     absl::Span<float> logits) {
  if (presence == 0.0f && frequency == 0.0f) return;
  for (const auto& [id, count] : counts) {
    logits[id] -= (count > 0 ? presence : 0.0f) + frequency * static_cast<float>(count);
  }
}

void ApplyTemperature(float temperature, absl::Span<float> logits) {
  if (temperature == 1.0f) return;
  for (float& logit : logits) logit /= temperature;
}

void MaskTopK(int k, absl::Span<float> logits) {
  if (k <= 0 || k >= static_cast<int>(logits.size())) return;
  const float kth = KthLargest(logits, k);
  for (float& logit : logits) logit = logit < kth ? kMasked : logit;  // a store per id: vectorises
}

void MaskTopP(float p, absl::Span<float> logits) {
  if (p >= 1.0f) return;
  // One exp per unmasked token gives the normaliser and each bin's mass; only the tokens of the bins that
  // reach p are sorted. The walk over them is exact, so the set kept does not depend on the binning.
  const float max_logit = MaxLogit(logits);
  if (max_logit == kMasked) return;
  const std::vector<int32_t> sparse = SparseUnmaskedIds(logits);
  std::array<double, kNumBins> mass{};
  double sum = 0.0;
  ForEachUnmasked(logits, sparse, [&](int32_t id) {
    const float weight = std::exp(logits[id] - max_logit);
    sum += weight;
    mass[BinOf(logits[id], max_logit)] += weight;
  });
  const double log_z = max_logit + std::log(sum);
  // One bin beyond the one that reaches p, for the rounding between binned and exact mass.
  const int last_bin = std::min(BinReaching(mass, p * sum) + 1, kNumBins - 1);
  size_t keep = 0;
  std::vector<int32_t> order;
  for (int bins : {last_bin, kNumBins - 1}) {  // the second pass sorts every unmasked id
    order.clear();
    ForEachUnmasked(logits, sparse, [&](int32_t id) {
      if (BinOf(logits[id], max_logit) <= bins) order.push_back(id);
    });
    SortMostLikelyFirst(logits, order);
    keep = TopPKeepCount(logits, order, log_z, p);
    if (keep > 0 || bins == kNumBins - 1) break;
  }
  if (keep == 0) return;  // rounding left the whole mass a hair below p: everything stays
  MaskAfter(order[keep - 1], sparse, logits);
}

void MaskMinP(float min_p, absl::Span<float> logits) {
  if (min_p <= 0.0f) return;
  const double threshold = MaxLogit(logits) + std::log(static_cast<double>(min_p));
  for (float& logit : logits) logit = logit < threshold ? kMasked : logit;
}

int32_t Argmax(absl::Span<const float> logits) {
  // The maximum of each chunk in vector instructions; then the first chunk holding the overall maximum is
  // searched for its first occurrence. A NaN never wins (the GPU's argmax passes it over too); a row of NaNs
  // gets token 0, torch.argmax's choice for it.
  constexpr size_t kChunk = 2048;
  size_t best_chunk = 0;
  bool found = false;
  float best = 0.f;
  for (size_t start = 0; start < logits.size(); start += kChunk) {
    const ChunkMax chunk = MaxNumber(logits.subspan(start, kChunk));
    if (chunk.any && (!found || chunk.value > best)) {
      best = chunk.value;
      best_chunk = start;
      found = true;
    }
  }
  if (!found) return 0;
  size_t id = best_chunk;
  while (!(logits[id] == best)) ++id;
  return static_cast<int32_t>(id);
}

double LogSumExp(absl::Span<const float> logits) {
  const float max_logit = MaxLogit(logits);
  if (max_logit == kMasked) return kMasked;
  double sum = 0.0;
  for (float logit : logits) {
    if (logit != kMasked) sum += std::exp(logit - max_logit);  // masked ones would add exp(-inf) = 0
  }
  return max_logit + std::log(sum);
}

int32_t SampleFromLogits(absl::Span<const float> logits, double uniform) {
  // One float exp per unmasked id, summed in double; the draw scales `uniform` by the total instead of
  // normalising every weight. Ids whose weight is 0 (masked or underflowed) can never be drawn.
  const float max_logit = MaxLogit(logits);
  thread_local std::vector<TokenWeight> weights;
  weights.clear();
  double total = 0.0;
  for (size_t id = 0; id < logits.size(); ++id) {
    if (logits[id] == kMasked) continue;
    const float weight = std::exp(logits[id] - max_logit);
    if (weight == 0.0f) continue;
    weights.push_back({static_cast<int32_t>(id), weight});
    total += weight;
  }
  if (weights.empty()) return Argmax(logits);
  const double target = uniform * total;
  double cumulative = 0.0;
  for (const TokenWeight& w : weights) {
    cumulative += w.weight;
    if (cumulative > target) return w.id;
  }
  return weights.back().id;  // rounding left the total a hair below `target`
}

double SeededUniform(uint64_t seed, uint64_t step) { return kernels::SeededUniform(seed, step); }

}  // namespace doze
