#include "worker/backend/cpu/matmul.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "worker/common/half.h"
#include "worker/common/logging.h"

namespace doze {
namespace {

// Weight rows per unit of work handed to a thread; a multiple of every row tile below.
constexpr int64_t kRowChunk = 16;

template <DType D>
struct Elem {
  using Type = uint16_t;
};
template <>
struct Elem<DType::kF32> {
  using Type = float;
};
template <DType D>
using ElemT = typename Elem<D>::Type;

// Widens eight consecutive weights to fp32.
template <DType D>
inline __m256 Load8(const ElemT<D>* p) {
  if constexpr (D == DType::kF32) {
    return _mm256_loadu_ps(p);
  } else if constexpr (D == DType::kF16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  } else {  // bf16 is the top half of an fp32: zero-extend and shift into place.
    __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  }
}

template <DType D>
inline float LoadOne(const ElemT<D>* p) {
  if constexpr (D == DType::kF32) {
    return *p;
  } else if constexpr (D == DType::kF16) {
    return HalfToFloat(*p);
  } else {
    return Bf16ToFloat(*p);
  }
}

inline float HorizontalSum(__m256 v) {
  __m128 sum = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
  sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
  return _mm_cvtss_f32(sum);
}

// The R x T dot products of R weight rows with T token rows: y[t * y_stride + r] = x[t] . w[r] (+ bias[r]).
// Every tile shape sums a product in the same order (two 8-lane accumulators over alternate 8-element steps,
// then an fma tail), so a row's result does not depend on the rows batched with it: decode alone equals
// decode in a batch, bit for bit.
template <DType D, int R, int T>
inline void DotTile(const float* x,     // [T, k]
                    const ElemT<D>* w,  // [R, k]
                    int64_t k, const float* bias, float* y, int64_t y_stride) {
  __m256 acc[T][R][2];
  for (int t = 0; t < T; ++t)
    for (int r = 0; r < R; ++r) acc[t][r][0] = acc[t][r][1] = _mm256_setzero_ps();
  // Adds the products of elements [i, i + 8) into accumulator u.
  auto step = [&](int64_t i, int u) {
    __m256 wv[R];
    for (int r = 0; r < R; ++r) wv[r] = Load8<D>(w + r * k + i);
    for (int t = 0; t < T; ++t) {
      const __m256 xv = _mm256_loadu_ps(x + t * k + i);
      for (int r = 0; r < R; ++r) acc[t][r][u] = _mm256_fmadd_ps(xv, wv[r], acc[t][r][u]);
    }
  };
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    step(i, 0);
    step(i + 8, 1);
  }
  if (i + 8 <= k) {
    step(i, 0);
    i += 8;
  }
  // An explicit fma, so that the compiler cannot round the tail differently in different tile shapes.
  float tail[T][R] = {};
  for (; i < k; ++i)
    for (int t = 0; t < T; ++t)
      for (int r = 0; r < R; ++r) tail[t][r] = std::fma(x[t * k + i], LoadOne<D>(w + r * k + i), tail[t][r]);
  for (int t = 0; t < T; ++t)
    for (int r = 0; r < R; ++r) {
      const float sum = HorizontalSum(_mm256_add_ps(acc[t][r][0], acc[t][r][1])) + tail[t][r];
      y[t * y_stride + r] = sum + (bias ? bias[r] : 0.0f);
    }
}

// Weight rows [row_begin, row_end) against T token rows. A single token streams one weight row at a time: on
// our EPYC machine, reading several rows side by side (several streams 1-10 KB apart) ran 2-3x slower than
// one sequential stream. Several tokens reuse each weight vector from a register, two rows at a time, which
// keeps 2T + 2 + 1 of the sixteen ymm registers busy.
template <DType D, int T>
void RowsTimesTokens(const float* x, const ElemT<D>* w, int64_t k, int64_t n, const float* bias, float* y,
                     int64_t row_begin, int64_t row_end) {
  constexpr int R = T == 1 ? 1 : 2;
  int64_t row = row_begin;
  for (; row + R <= row_end; row += R) {
    DotTile<D, R, T>(x, w + row * k, k, bias ? bias + row : nullptr, y + row, n);
  }
  for (; row < row_end; ++row) DotTile<D, 1, T>(x, w + row * k, k, bias ? bias + row : nullptr, y + row, n);
}

// All m token rows against weight rows [row_begin, row_end), three tokens at a time.
template <DType D>
void MatmulRows(const float* x, int64_t m, const ElemT<D>* w, int64_t k, int64_t n, const float* bias,
                float* y, int64_t row_begin, int64_t row_end) {
  int64_t t = 0;
  for (; t + 3 <= m; t += 3) RowsTimesTokens<D, 3>(x + t * k, w, k, n, bias, y + t * n, row_begin, row_end);
  const float* xt = x + t * k;  // [m - t, k]
  float* yt = y + t * n;        // [m - t, n]
  if (m - t == 2) RowsTimesTokens<D, 2>(xt, w, k, n, bias, yt, row_begin, row_end);
  if (m - t == 1) RowsTimesTokens<D, 1>(xt, w, k, n, bias, yt, row_begin, row_end);
}

template <DType D>
void MatmulTyped(const float* x, int64_t m, const WeightMatrix& w, const float* bias, float* y,
                 ThreadPool* pool) {
  const auto* weights = static_cast<const ElemT<D>*>(w.data);  // [n, k]
  const int64_t num_chunks = (w.rows + kRowChunk - 1) / kRowChunk;
  // A few pieces per thread, so that a thread that falls behind can be covered by the others.
  const int64_t grain = std::max<int64_t>(1, num_chunks / (4 * pool->num_threads()));
  pool->ParallelFor(num_chunks, grain, [&](int64_t begin, int64_t end, int) {
    MatmulRows<D>(x, m, weights, w.cols, w.rows, bias, y, begin * kRowChunk,
                  std::min(end * kRowChunk, w.rows));
  });
}

}  // namespace

WeightMatrix AsWeightMatrix(const TensorView& tensor) {
  DOZE_CHECK(tensor.shape.size() == 2) << "a linear weight is 2-D";
  return WeightMatrix{tensor.dtype, tensor.data, tensor.shape[0], tensor.shape[1]};
}

void Matmul(const float* x, int64_t m, const WeightMatrix& w, const float* bias, float* y, ThreadPool* pool) {
  if (m <= 0 || w.rows <= 0) return;
  switch (w.dtype) {
    case DType::kBF16:
      MatmulTyped<DType::kBF16>(x, m, w, bias, y, pool);
      break;
    case DType::kF16:
      MatmulTyped<DType::kF16>(x, m, w, bias, y, pool);
      break;
    case DType::kF32:
      MatmulTyped<DType::kF32>(x, m, w, bias, y, pool);
      break;
  }
}

}  // namespace doze
