#include "worker/backend/cpu/paged_attention.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace doze {
namespace {

// q . k over one head, in fp32 with eight lanes.
float Dot(const float* a, const float* b, int n) {
  __m256 acc = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  __m128 sum = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
  sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
  float total = _mm_cvtss_f32(sum);
  for (; i < n; ++i) total += a[i] * b[i];
  return total;
}

// Turns scores into probabilities in place: exp(s - max) / sum.
void Softmax(float* scores, int n) {
  const float max_score = *std::max_element(scores, scores + n);
  float sum = 0.0f;
  for (int j = 0; j < n; ++j) {
    scores[j] = std::exp(scores[j] - max_score);
    sum += scores[j];
  }
  const float inv_sum = 1.0f / sum;
  for (int j = 0; j < n; ++j) scores[j] *= inv_sum;
}

// One token against one KV head: the query heads of that head's group share every K and V row read.
void AttendGroup(const AttentionShape& shape, const float* q, const float* k_cache, const float* v_cache,
                 const int32_t* block_table, int context_len, int kv_head, float* out,
                 std::vector<float>* scratch) {
  const int group = shape.num_heads / shape.num_kv_heads;
  const int d = shape.head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const int64_t kv_row = static_cast<int64_t>(shape.num_kv_heads) * d;  // floats per slot
  scratch->resize(static_cast<size_t>(group) * context_len);
  float* scores = scratch->data();                                       // [group, context_len]
  const float* q_group = q + static_cast<int64_t>(kv_head) * group * d;  // [group, head_dim]
  for (int j = 0; j < context_len; ++j) {
    const int64_t slot =
        static_cast<int64_t>(block_table[j / shape.block_size]) * shape.block_size + j % shape.block_size;
    const float* k_row = k_cache + slot * kv_row + static_cast<int64_t>(kv_head) * d;  // [head_dim]
    for (int h = 0; h < group; ++h) scores[h * context_len + j] = Dot(q_group + h * d, k_row, d) * scale;
  }
  float* out_group = out + static_cast<int64_t>(kv_head) * group * d;  // [group, head_dim]
  std::fill(out_group, out_group + group * d, 0.0f);
  for (int h = 0; h < group; ++h) Softmax(scores + h * context_len, context_len);
  for (int j = 0; j < context_len; ++j) {
    const int64_t slot =
        static_cast<int64_t>(block_table[j / shape.block_size]) * shape.block_size + j % shape.block_size;
    const float* v_row = v_cache + slot * kv_row + static_cast<int64_t>(kv_head) * d;  // [head_dim]
    for (int h = 0; h < group; ++h) {
      const float p = scores[h * context_len + j];
      float* o = out_group + h * d;  // [head_dim]
      for (int i = 0; i < d; ++i) o[i] += p * v_row[i];
    }
  }
}

}  // namespace

void WriteKvCache(const AttentionShape& shape, const float* k, const float* v, const int32_t* slots,
                  int64_t num_tokens, float* k_cache, float* v_cache) {
  const int64_t kv_row = static_cast<int64_t>(shape.num_kv_heads) * shape.head_dim;
  for (int64_t t = 0; t < num_tokens; ++t) {
    std::memcpy(k_cache + slots[t] * kv_row, k + t * kv_row, kv_row * sizeof(float));
    std::memcpy(v_cache + slots[t] * kv_row, v + t * kv_row, kv_row * sizeof(float));
  }
}

void PagedAttention(const AttentionShape& shape, const float* q, const float* k_cache, const float* v_cache,
                    const int32_t* positions, const int32_t* token_seq, const int32_t* block_tables,
                    int max_blocks_per_seq, int64_t num_tokens, float* out, ThreadPool* pool) {
  const int64_t q_row = static_cast<int64_t>(shape.num_heads) * shape.head_dim;
  std::vector<std::vector<float>> scratch(pool->num_threads());  // per thread: [group, context_len]
  pool->ParallelFor(num_tokens * shape.num_kv_heads, 1, [&](int64_t begin, int64_t end, int thread) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t t = item / shape.num_kv_heads;
      const int kv_head = static_cast<int>(item % shape.num_kv_heads);
      const int32_t* block_table = block_tables + static_cast<int64_t>(token_seq[t]) * max_blocks_per_seq;
      AttendGroup(shape, q + t * q_row, k_cache, v_cache, block_table, positions[t] + 1, kv_head,
                  out + t * q_row, &scratch[thread]);
    }
  });
}

}  // namespace doze
