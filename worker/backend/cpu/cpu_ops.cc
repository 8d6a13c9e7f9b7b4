#include "worker/backend/cpu/cpu_ops.h"

#include <cmath>

#include "worker/common/half.h"

namespace doze {

void RmsNorm(const float* x, const float* w, int64_t num_rows, int64_t dim, float eps, float* out) {
  for (int64_t r = 0; r < num_rows; ++r) {
    const float* xr = x + r * dim;  // [dim]
    float* yr = out + r * dim;      // [dim]
    double sum_squares = 0.0;
    for (int64_t i = 0; i < dim; ++i) sum_squares += static_cast<double>(xr[i]) * xr[i];
    const float variance = static_cast<float>(sum_squares / static_cast<double>(dim));
    const float inv_rms = 1.0f / std::sqrt(variance + eps);
    for (int64_t i = 0; i < dim; ++i) yr[i] = w[i] * (xr[i] * inv_rms);
  }
}

void RopeCosSin(const int32_t* positions, int64_t num_tokens, int head_dim, double theta, float* cos,
                float* sin) {
  const int half = head_dim / 2;
  // transformers: inv_freq = 1.0 / (base ** (arange(0, dim, 2).float() / dim)), every step a float32 tensor
  // op; freqs = inv_freq (fp32) @ position (fp32), then cos/sin in fp32.
  const float base = static_cast<float>(theta);
  for (int64_t t = 0; t < num_tokens; ++t) {
    const float position = static_cast<float>(positions[t]);
    for (int i = 0; i < half; ++i) {
      const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
      const float inv_freq = 1.0f / std::pow(base, exponent);
      const float angle = position * inv_freq;
      cos[t * half + i] = static_cast<float>(std::cos(static_cast<double>(angle)));
      sin[t * half + i] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
  }
}

void ApplyRope(float* x, int64_t num_tokens, int64_t row_stride, int num_heads, int head_dim,
               const float* cos, const float* sin) {
  const int half = head_dim / 2;
  for (int64_t t = 0; t < num_tokens; ++t) {
    const float* c = cos + t * half;  // [half]
    const float* s = sin + t * half;  // [half]
    for (int h = 0; h < num_heads; ++h) {
      float* head = x + t * row_stride + static_cast<int64_t>(h) * head_dim;  // [head_dim]
      for (int i = 0; i < half; ++i) {
        const float x1 = head[i];
        const float x2 = head[i + half];
        // emb = cat(freqs, freqs), so both halves use angle i; rotate_half(x) = cat(-x2, x1).
        const float first_cos = x1 * c[i];
        const float first_sin = -x2 * s[i];
        const float second_cos = x2 * c[i];
        const float second_sin = x1 * s[i];
        head[i] = first_cos + first_sin;
        head[i + half] = second_cos + second_sin;
      }
    }
  }
}

void SiluMul(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = (g / (1.0f + std::exp(-g))) * up[i];
  }
}

void AddInPlace(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

namespace {

// Widens n elements of a 16- or 32-bit float array to fp32.
void Widen(DType dtype, const void* data, int64_t n, float* out) {
  switch (dtype) {
    case DType::kF32: {
      const auto* src = static_cast<const float*>(data);  // [n]
      for (int64_t i = 0; i < n; ++i) out[i] = src[i];
      break;
    }
    case DType::kF16: {
      const auto* src = static_cast<const uint16_t*>(data);  // [n]
      for (int64_t i = 0; i < n; ++i) out[i] = HalfToFloat(src[i]);
      break;
    }
    case DType::kBF16: {
      const auto* src = static_cast<const uint16_t*>(data);  // [n]
      for (int64_t i = 0; i < n; ++i) out[i] = Bf16ToFloat(src[i]);
      break;
    }
  }
}

}  // namespace

void GatherRows(const TensorView& table, const int32_t* ids, int64_t num_ids, float* out) {
  const int64_t dim = table.shape[1];
  const size_t row_bytes = static_cast<size_t>(dim) * DTypeSize(table.dtype);
  for (int64_t t = 0; t < num_ids; ++t) {
    Widen(table.dtype, static_cast<const char*>(table.data) + static_cast<size_t>(ids[t]) * row_bytes, dim,
          out + t * dim);
  }
}

void WidenToFloat(const TensorView& tensor, float* out) {
  Widen(tensor.dtype, tensor.data, tensor.num_elements(), out);
}

}  // namespace doze
