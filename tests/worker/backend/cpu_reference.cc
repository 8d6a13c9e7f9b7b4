#include "tests/worker/backend/cpu_reference.h"

#include <algorithm>
#include <cmath>

#include "worker/common/half.h"

namespace doze::testing {

std::vector<double> ToDouble(const TensorView& tensor) {
  std::vector<double> out(tensor.num_elements());
  for (size_t i = 0; i < out.size(); ++i) {
    switch (tensor.dtype) {
      case DType::kF32:
        out[i] = static_cast<const float*>(tensor.data)[i];
        break;
      case DType::kF16:
        out[i] = HalfToFloat(static_cast<const uint16_t*>(tensor.data)[i]);
        break;
      case DType::kBF16:
        out[i] = Bf16ToFloat(static_cast<const uint16_t*>(tensor.data)[i]);
        break;
    }
  }
  return out;
}

std::vector<double> RefRmsNorm(const std::vector<double>& x, const std::vector<double>& w, double eps) {
  const size_t dim = w.size();
  std::vector<double> out(x.size());
  for (size_t r = 0; r < x.size() / dim; ++r) {
    double sum_squares = 0;
    for (size_t i = 0; i < dim; ++i) sum_squares += x[r * dim + i] * x[r * dim + i];
    const double inv_rms = 1.0 / std::sqrt(sum_squares / dim + eps);
    for (size_t i = 0; i < dim; ++i) out[r * dim + i] = w[i] * x[r * dim + i] * inv_rms;
  }
  return out;
}

std::vector<double> RefMatmul(const std::vector<double>& x, const std::vector<double>& w,
                              const std::vector<double>* bias, int64_t n) {
  const int64_t k = static_cast<int64_t>(w.size()) / n;
  const int64_t m = static_cast<int64_t>(x.size()) / k;
  std::vector<double> y(m * n);
  for (int64_t t = 0; t < m; ++t) {
    for (int64_t j = 0; j < n; ++j) {
      double sum = bias ? (*bias)[j] : 0.0;
      for (int64_t i = 0; i < k; ++i) sum += x[t * k + i] * w[j * k + i];
      y[t * n + j] = sum;
    }
  }
  return y;
}

void RefRope(double* x, int num_heads, int head_dim, int64_t position, double theta) {
  const int half = head_dim / 2;
  for (int h = 0; h < num_heads; ++h) {
    double* head = x + h * head_dim;
    for (int i = 0; i < half; ++i) {
      const double angle = position / std::pow(theta, 2.0 * i / head_dim);
      const double x1 = head[i];
      const double x2 = head[i + half];
      head[i] = x1 * std::cos(angle) - x2 * std::sin(angle);
      head[i + half] = x2 * std::cos(angle) + x1 * std::sin(angle);
    }
  }
}

std::vector<double> RefAttendHead(const double* q, const double* keys, const double* values, int context,
                                  int head_dim) {
  std::vector<double> scores(context);
  for (int j = 0; j < context; ++j) {
    double dot = 0;
    for (int i = 0; i < head_dim; ++i) dot += q[i] * keys[j * head_dim + i];
    scores[j] = dot / std::sqrt(static_cast<double>(head_dim));
  }
  const double max_score = *std::max_element(scores.begin(), scores.end());
  double sum = 0;
  for (double& s : scores) sum += (s = std::exp(s - max_score));
  std::vector<double> out(head_dim, 0.0);
  for (int j = 0; j < context; ++j)
    for (int i = 0; i < head_dim; ++i) out[i] += scores[j] / sum * values[j * head_dim + i];
  return out;
}

namespace {

// Causal self-attention of all n tokens of one layer: q [n, heads * d], k and v [n, kv_heads * d].
std::vector<double> RefCausalAttention(const ModelConfig& config, const std::vector<double>& q,
                                       const std::vector<double>& k, const std::vector<double>& v, int n) {
  const int d = config.head_dim;
  const int group = config.num_attention_heads / config.num_key_value_heads;
  std::vector<double> out(static_cast<size_t>(n) * config.q_size());
  for (int t = 0; t < n; ++t) {
    for (int h = 0; h < config.num_attention_heads; ++h) {
      const int g = h / group;
      std::vector<double> keys, values;  // [t + 1, d]
      for (int j = 0; j <= t; ++j) {
        keys.insert(keys.end(), &k[(j * config.num_key_value_heads + g) * d],
                    &k[(j * config.num_key_value_heads + g) * d] + d);
        values.insert(values.end(), &v[(j * config.num_key_value_heads + g) * d],
                      &v[(j * config.num_key_value_heads + g) * d] + d);
      }
      std::vector<double> head =
          RefAttendHead(&q[(t * config.num_attention_heads + h) * d], keys.data(), values.data(), t + 1, d);
      std::copy(head.begin(), head.end(), &out[(t * config.num_attention_heads + h) * d]);
    }
  }
  return out;
}

void AddTo(std::vector<double>& x, const std::vector<double>& y) {
  for (size_t i = 0; i < x.size(); ++i) x[i] += y[i];
}

// One decoder layer over the residual stream x [n, hidden].
void RefLayer(const ModelConfig& config, const LayerWeights& w, std::vector<double>& x, int n) {
  const double eps = config.rms_norm_eps;
  std::vector<double> h = RefRmsNorm(x, ToDouble(w.input_layernorm), eps);
  const std::vector<double> q_bias = ToDouble(w.q_bias), k_bias = ToDouble(w.k_bias),
                            v_bias = ToDouble(w.v_bias);
  std::vector<double> q = RefMatmul(h, ToDouble(w.q_proj), &q_bias, config.q_size());
  std::vector<double> k = RefMatmul(h, ToDouble(w.k_proj), &k_bias, config.kv_size());
  std::vector<double> v = RefMatmul(h, ToDouble(w.v_proj), &v_bias, config.kv_size());
  for (int t = 0; t < n; ++t) {
    RefRope(&q[t * config.q_size()], config.num_attention_heads, config.head_dim, t, config.rope_theta);
    RefRope(&k[t * config.kv_size()], config.num_key_value_heads, config.head_dim, t, config.rope_theta);
  }
  AddTo(x,
        RefMatmul(RefCausalAttention(config, q, k, v, n), ToDouble(w.o_proj), nullptr, config.hidden_size));
  h = RefRmsNorm(x, ToDouble(w.post_attention_layernorm), eps);
  std::vector<double> gate = RefMatmul(h, ToDouble(w.gate_proj), nullptr, config.intermediate_size);
  const std::vector<double> up = RefMatmul(h, ToDouble(w.up_proj), nullptr, config.intermediate_size);
  for (size_t i = 0; i < gate.size(); ++i) gate[i] = gate[i] / (1.0 + std::exp(-gate[i])) * up[i];
  AddTo(x, RefMatmul(gate, ToDouble(w.down_proj), nullptr, config.hidden_size));
}

}  // namespace

std::vector<std::vector<double>> RefForward(const ModelConfig& config, const ModelWeights& weights,
                                            const std::vector<int32_t>& tokens) {
  const int n = static_cast<int>(tokens.size());
  const int hidden = config.hidden_size;
  const std::vector<double> embed = ToDouble(weights.embed_tokens);
  std::vector<double> x;  // [n, hidden]
  for (int32_t token : tokens) x.insert(x.end(), &embed[token * hidden], &embed[token * hidden] + hidden);
  for (const LayerWeights& layer : weights.layers) RefLayer(config, layer, x, n);
  const std::vector<double> normed = RefRmsNorm(x, ToDouble(weights.norm), config.rms_norm_eps);
  const std::vector<double> logits = RefMatmul(normed, ToDouble(weights.lm_head), nullptr, config.vocab_size);
  std::vector<std::vector<double>> rows(n);
  for (int t = 0; t < n; ++t)
    rows[t].assign(&logits[t * config.vocab_size], &logits[(t + 1) * config.vocab_size]);
  return rows;
}

}  // namespace doze::testing
