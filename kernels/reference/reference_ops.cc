#include "kernels/reference/reference_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>

#include "kernels/lm_head_screen_bound.h"
#include "kernels/pending_residual.h"

namespace doze::kernels::reference {

float RoundBf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  bits = (bits + 0x7fffu + ((bits >> 16) & 1u)) & 0xffff0000u;
  float y;
  std::memcpy(&y, &bits, sizeof(y));
  return y;
}

int64_t ToPending(float v) { return std::llrint(v * kPendingScale); }

float PendingValue(int64_t sum) { return static_cast<float>(sum) * (1.f / kPendingScale); }

float WithPending(float residual, int64_t sum) { return RoundBf16(residual + RoundBf16(PendingValue(sum))); }

int64_t CountNonFinite(const float* x, int64_t n) {
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) count += !std::isfinite(x[i]);
  return count;
}

void GatherRows(const int32_t* indices, const float* table, float* out, int num_rows, int width) {
  for (int r = 0; r < num_rows; ++r) {
    for (int c = 0; c < width; ++c) {
      out[static_cast<size_t>(r) * width + c] =
          indices[r] < 0 ? 0.f : table[static_cast<size_t>(indices[r]) * width + c];
    }
  }
}

void StageStepInputs(const int32_t* host_ints, int32_t* ints, int num_ints, int num_tokens,
                     int sources_offset, const int32_t* previous, int32_t* published, int num_published) {
  for (int i = 0; i < num_ints; ++i) {
    const int32_t source = i < num_tokens && sources_offset >= 0 ? host_ints[sources_offset + i] : -1;
    ints[i] = source >= 0 ? previous[source] : host_ints[i];
  }
  for (int i = 0; i < num_published; ++i) published[i] = previous[i];
}

void RmsNorm(float* residual, const float* x, const float* weight, float* out, int num_rows, int hidden,
             float eps) {
  std::vector<float> row(hidden);
  for (int r = 0; r < num_rows; ++r) {
    const size_t base = static_cast<size_t>(r) * hidden;
    double sum_sq = 0;
    for (int c = 0; c < hidden; ++c) {
      row[c] = residual ? RoundBf16(residual[base + c] + x[base + c]) : x[base + c];
      if (residual) residual[base + c] = row[c];
      sum_sq += static_cast<double>(row[c]) * row[c];
    }
    const double inv_rms = 1.0 / std::sqrt(sum_sq / hidden + eps);
    for (int c = 0; c < hidden; ++c) out[base + c] = static_cast<float>(row[c] * inv_rms * weight[c]);
  }
}

void Linear(const float* x, const float* w, const float* bias, float* y, int m, int n, int k) {
  for (int r = 0; r < m; ++r) {
    for (int c = 0; c < n; ++c) {
      double acc = bias ? bias[c] : 0.0;
      for (int i = 0; i < k; ++i)
        acc += static_cast<double>(x[static_cast<size_t>(r) * k + i]) * w[static_cast<size_t>(c) * k + i];
      y[static_cast<size_t>(r) * n + c] = static_cast<float>(acc);
    }
  }
}

void SiluMul(const float* gate_up, float* out, int num_rows, int intermediate) {
  for (int r = 0; r < num_rows; ++r) {
    for (int i = 0; i < intermediate; ++i) {
      const double g = gate_up[static_cast<size_t>(r) * 2 * intermediate + i];
      const double u = gate_up[static_cast<size_t>(r) * 2 * intermediate + intermediate + i];
      out[static_cast<size_t>(r) * intermediate + i] = static_cast<float>(g / (1.0 + std::exp(-g)) * u);
    }
  }
}

void Rotary(float* qkv, const int32_t* positions, const float* inv_freq, int num_tokens, int num_q_heads,
            int num_kv_heads, int head_dim) {
  const int half = head_dim / 2;
  const int row_width = (num_q_heads + 2 * num_kv_heads) * head_dim;
  for (int t = 0; t < num_tokens; ++t) {
    for (int h = 0; h < num_q_heads + num_kv_heads; ++h) {
      float* x = qkv + static_cast<size_t>(t) * row_width + h * head_dim;
      for (int i = 0; i < half; ++i) {
        const float angle = static_cast<float>(positions[t]) * inv_freq[i];
        const float c = RoundBf16(std::cos(angle)), s = RoundBf16(std::sin(angle));
        const float x1 = x[i], x2 = x[i + half];
        x[i] = x1 * c - x2 * s;
        x[i + half] = x2 * c + x1 * s;
      }
    }
  }
}

std::vector<float> RopeInvFreq(int head_dim, double theta) {
  std::vector<float> inv_freq(head_dim / 2);
  for (int i = 0; i < head_dim / 2; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv_freq[i] = 1.0f / std::pow(static_cast<float>(theta), exponent);
  }
  return inv_freq;
}

void PagedAttention(const AttentionInputs& in, float* out) {
  const int group = in.num_q_heads / in.num_kv_heads;
  std::vector<double> scores;
  for (int t = 0; t < in.num_tokens; ++t) {
    const int32_t* table = in.block_tables + static_cast<size_t>(in.token_seq[t]) * in.max_blocks_per_seq;
    const int ctx = in.context_lens[t];
    for (int h = 0; h < in.num_q_heads; ++h) {
      const float* q = in.q + static_cast<size_t>(t) * in.q_row_stride + h * in.head_dim;
      auto cache_row = [&](const float* cache, int key) {
        const size_t slot =
            static_cast<size_t>(table[key / in.block_size]) * in.block_size + key % in.block_size;
        return cache + (slot * in.num_kv_heads + h / group) * in.head_dim;
      };
      scores.assign(ctx, 0.0);
      double max_score = -std::numeric_limits<double>::infinity();
      for (int key = 0; key < ctx; ++key) {
        const float* k = cache_row(in.k_cache, key);
        double dot = 0;
        for (int d = 0; d < in.head_dim; ++d) dot += static_cast<double>(q[d]) * k[d];
        scores[key] = dot * in.scale;
        max_score = std::max(max_score, scores[key]);
      }
      double total = 0;
      for (int key = 0; key < ctx; ++key) total += scores[key] = std::exp(scores[key] - max_score);
      float* o = out + (static_cast<size_t>(t) * in.num_q_heads + h) * in.head_dim;
      for (int d = 0; d < in.head_dim; ++d) {
        double acc = 0;
        for (int key = 0; key < ctx; ++key) acc += scores[key] * cache_row(in.v_cache, key)[d];
        o[d] = ctx > 0 ? static_cast<float>(acc / total) : 0.f;
      }
    }
  }
}

LmHeadScreenRows BuildLmHeadScreen(const float* w, int n, int k, int bits) {
  const ScreenFormat format = ScreenFormatOf(bits);
  LmHeadScreenRows out;
  out.bits = bits;
  out.q.resize(static_cast<size_t>(n) * k);
  out.scale.resize(n);
  out.error.resize(n);
  out.norm.resize(n);
  for (int j = 0; j < n; ++j) {
    const float* row = w + static_cast<size_t>(j) * k;
    float max_abs = 0.f;
    for (int i = 0; i < k; ++i) max_abs = std::max(max_abs, std::fabs(row[i]));
    const float s = ScreenScale(max_abs, format.weight_max),
                inv = ScreenInverseScale(max_abs, format.weight_max);
    double err_sq = 0, q_sq = 0, w_sq = 0;
    for (int i = 0; i < k; ++i) {
      const int q = ScreenQuantize(row[i], inv, format.weight_max);
      out.q[static_cast<size_t>(j) * k + i] = static_cast<int8_t>(q);
      const double dq = static_cast<double>(s) * q;
      err_sq += (row[i] - dq) * (row[i] - dq);
      q_sq += dq * dq;
      w_sq += static_cast<double>(row[i]) * row[i];
    }
    out.scale[j] = s;
    out.error[j] = ScreenRowError(err_sq, w_sq, k);
    out.norm[j] = ScreenRowNorm(q_sq);
  }
  return out;
}

std::vector<float> LmHeadScreenUpper(const float* x, int m, const LmHeadScreenRows& screen, int n, int k) {
  std::vector<float> upper(static_cast<size_t>(m) * n);
  const int limit = ScreenXQuantMax(k, ScreenFormatOf(screen.bits));
  std::vector<int> p(k);
  for (int r = 0; r < m; ++r) {
    const float* xr = x + static_cast<size_t>(r) * k;
    float max_abs = 0.f, sum_sq = 0.f;
    for (int i = 0; i < k; ++i) {
      max_abs = std::max(max_abs, std::fabs(xr[i]));
      sum_sq = std::fma(xr[i], xr[i], sum_sq);
    }
    const float inv = ScreenInverseScale(max_abs, limit), step = ScreenScale(max_abs, limit);
    for (int i = 0; i < k; ++i) p[i] = ScreenQuantize(xr[i], inv, limit);
    const float x_norm = ScreenXNorm(sum_sq, k), x_error = ScreenXError(step, k);
    for (int j = 0; j < n; ++j) {
      int32_t sum = 0;
      for (int i = 0; i < k; ++i) sum += p[i] * screen.q[static_cast<size_t>(j) * k + i];
      const float approx = ScreenApproxLogit(step, screen.scale[j], sum);
      upper[static_cast<size_t>(r) * n + j] =
          ScreenUpper(approx, x_norm, x_error, screen.error[j], screen.norm[j]);
    }
  }
  return upper;
}

}  // namespace doze::kernels::reference
