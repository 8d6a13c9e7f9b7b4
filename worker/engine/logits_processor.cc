#include "worker/engine/logits_processor.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <queue>
#include <vector>

#include "absl/container/flat_hash_set.h"

namespace doze {
namespace {

constexpr float kMasked = -std::numeric_limits<float>::infinity();

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

}  // namespace

float KthLargest(absl::Span<const float> values, int k) {
  // A min-heap of the k largest so far: one comparison per value once it is full.
  std::priority_queue<float, std::vector<float>, std::greater<float>> heap;
  for (float v : values) {
    if (static_cast<int>(heap.size()) < k) {
      heap.push(v);
    } else if (v > heap.top()) {
      heap.pop();
      heap.push(v);
    }
  }
  return heap.top();
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
  for (float& logit : logits) {
    if (logit < kth) logit = kMasked;
  }
}

void MaskTopP(float p, absl::Span<float> logits) {
  if (p >= 1.0f) return;
  const double log_z = LogSumExp(logits);
  std::vector<int32_t> order;  // only the unmasked ids: after top-k, a handful
  for (size_t id = 0; id < logits.size(); ++id) {
    if (logits[id] != kMasked) order.push_back(static_cast<int32_t>(id));
  }
  auto more_likely = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  // Sort only as far as needed: the kept set is usually a few dozen tokens of a vocabulary of 150k.
  size_t sorted = std::min<size_t>(order.size(), 64);
  size_t keep = 0;
  double mass_above = 0.0;
  for (;;) {
    std::partial_sort(order.begin() + keep, order.begin() + sorted, order.end(), more_likely);
    while (keep < sorted && mass_above < p) mass_above += std::exp(logits[order[keep++]] - log_z);
    if (mass_above >= p || sorted == order.size()) break;
    sorted = std::min(order.size(), sorted * 4);
  }
  for (size_t i = keep; i < order.size(); ++i) logits[order[i]] = kMasked;
}

void MaskMinP(float min_p, absl::Span<float> logits) {
  if (min_p <= 0.0f) return;
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  const double threshold = max_logit + std::log(static_cast<double>(min_p));
  for (float& logit : logits) {
    if (logit < threshold) logit = kMasked;
  }
}

int32_t Argmax(absl::Span<const float> logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

double LogSumExp(absl::Span<const float> logits) {
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  if (max_logit == kMasked) return kMasked;
  double sum = 0.0;
  for (float logit : logits) sum += std::exp(logit - max_logit);  // float exp: vocabulary-wide, hot
  return max_logit + std::log(sum);
}

int32_t SampleFromLogits(absl::Span<const float> logits, double uniform) {
  // One exp per id (float, vectorisable), summed in double; the draw scales `uniform` by the total instead of
  // normalising every weight.
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  thread_local std::vector<float> weights;
  weights.resize(logits.size());
  double total = 0.0;
  for (size_t id = 0; id < logits.size(); ++id) {
    weights[id] = std::exp(logits[id] - max_logit);  // exp(-inf) = 0 for masked ids
    total += weights[id];
  }
  const double target = uniform * total;
  double cumulative = 0.0;
  int32_t last_possible = Argmax(logits);
  for (size_t id = 0; id < logits.size(); ++id) {
    if (weights[id] == 0.0f) continue;
    cumulative += weights[id];
    last_possible = static_cast<int32_t>(id);
    if (cumulative > target) return last_possible;
  }
  return last_possible;  // rounding left the total a hair below `target`
}

double SeededUniform(uint64_t seed, uint64_t step) {
  const uint64_t bits = SplitMix64(SplitMix64(seed) ^ (step * 0xD1B54A32D192ED03ULL));
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

}  // namespace doze
