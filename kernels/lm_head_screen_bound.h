// The arithmetic of the screened LM head (kernels/lm_head_screen.h) that must hold exactly: how w and x
// become integers and how far the integer logit can be from the fp32 one. Host and device share it, so that a
// CPU test checks the bound against exact sums with the very expressions the kernels use.
//
// w's row j becomes q_j = rint(w_j / s_j) with s_j = max|w_j| / L (L = 127 for the int8 copy, 7 for the int4
// copy, which stores q + 8 in a nibble), x's row x / t with t = max|x| / XQuantMax(k) (int16, so that k
// products of the stored weight's largest magnitude, 127 or 15, and XQuantMax fit an int32 sum). With w~ = s
// q and x~ = t p,
//   |x . w_j - x~ . w~_j| <= ||x|| ||w_j - w~_j|| + ||x - x~|| ||w~_j||   (Cauchy-Schwarz, twice)
// and an fp32 sum of k products of x and w_j is within k 2^-24 ||x|| ||w_j|| of x . w_j. The per-row factors
// (||w_j - w~_j|| + k 2^-24 ||w_j||, and ||w~_j||) are computed once in double and rounded up; the per-step
// ones (||x||, ||x - x~||) in fp32 with a margin for their own rounding.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define DOZE_SCREEN_FN __host__ __device__ inline
#else
#define DOZE_SCREEN_FN inline
#endif

namespace doze::kernels {

// A copy's levels: q in [-weight_max, weight_max], stored as q + offset in `bits` bits.
struct ScreenFormat {
  int bits;
  int weight_max;
  int offset;
  // The largest stored value's magnitude, which the integer sums multiply.
  DOZE_SCREEN_FN constexpr int stored_max() const { return weight_max + offset; }
};
// The int8 copy (bits 8) or the int4 one (bits 4).
DOZE_SCREEN_FN constexpr ScreenFormat ScreenFormatOf(int bits) {
  return bits == 4 ? ScreenFormat{4, 7, 8} : ScreenFormat{8, 127, 0};
}

// The largest |p| of x's 16-bit copy for a hidden size of k: k * stored_max * XQuantMax stays below 2^31.
DOZE_SCREEN_FN int ScreenXQuantMax(int k, ScreenFormat format) {
  const int64_t fit = (int64_t{2147483647} / (int64_t{format.stored_max()} * k));
  return static_cast<int>(fit < 32767 ? fit : 32767);
}

// A row's integer copy rounds v / scale to the nearest integer (ties to even), within +-limit.
DOZE_SCREEN_FN int ScreenQuantize(float v, float inv_scale, int limit) {
  const float q = rintf(v * inv_scale);
  return static_cast<int>(fminf(fmaxf(q, static_cast<float>(-limit)), static_cast<float>(limit)));
}

// The scale of a row whose largest magnitude is `max_abs`, quantized to +-limit, and its inverse (0 for a
// zero row).
DOZE_SCREEN_FN float ScreenScale(float max_abs, int limit) { return max_abs / limit; }
DOZE_SCREEN_FN float ScreenInverseScale(float max_abs, int limit) {
  return max_abs > 0.f ? limit / max_abs : 0.f;
}

// The per-row error factor from double sums over the row: ||w - w~|| plus the fp32 sum's rounding
// (k 2^-24 ||w||), rounded up.
DOZE_SCREEN_FN float ScreenRowError(double err_sq, double w_sq, int k) {
  const double bound = sqrt(err_sq) + k * 0x1p-24 * sqrt(w_sq);
  return static_cast<float>(bound * (1 + 1e-6)) * (1.f + 0x1p-22f);
}

// ||w~||, rounded up.
DOZE_SCREEN_FN float ScreenRowNorm(double q_sq) {
  return static_cast<float>(sqrt(q_sq) * (1 + 1e-6)) * (1.f + 0x1p-22f);
}

// ||x|| from an fp32 sum of k squares, rounded up past that sum's and the root's rounding.
DOZE_SCREEN_FN float ScreenXNorm(float sum_sq, int k) { return sqrtf(sum_sq) * (1.f + (k + 4) * 0x1p-23f); }

// ||x - x~|| for step t: every element's copy is within half a step of x / t computed exactly; x * (1 / t)
// in fp32 is within 4 2^-24 XQuantMax < 0.008 steps of x / t, so 0.51 steps an element.
DOZE_SCREEN_FN float ScreenXError(float step, int k) {
  return 0.51f * step * sqrtf(static_cast<float>(k)) * (1.f + 0x1p-18f);
}

// The integer logit as a float: (t s) * sum, whose two roundings (and the sum's conversion) stay within
// 2^-22 |a|.
DOZE_SCREEN_FN float ScreenApproxLogit(float x_step, float row_scale, int32_t sum) {
  return x_step * row_scale * static_cast<float>(sum);
}

// An upper bound of every fp32 logit this row can have: a + (||x|| e + ||x - x~|| n + the conversion's
// rounding), with a margin for the sum's own roundings.
DOZE_SCREEN_FN float ScreenUpper(float approx, float x_norm, float x_error, float row_error, float row_norm) {
  const float slack = x_norm * row_error + x_error * row_norm + 0x1p-20f * fabsf(approx);
  return approx + slack * (1.f + 0x1p-16f);
}

}  // namespace doze::kernels

#undef DOZE_SCREEN_FN
