// Sums a kernel adds to the residual stream later, from many blocks at once: fixed point (value * 2^32,
// rounded to the nearest integer) in int64, added with integer atomics, which are associative, so the total
// is the same bits whatever order the blocks' additions land in (fp32 atomics would make decoding depend on
// the scheduling). The kernels after it add the total to the residual stream as ResidualGemv's epilogue
// does: bf16(residual + bf16(sum)). The device functions are in kernels/pending_residual.cuh.
#pragma once

namespace doze::kernels {

// 2^32: the fixed point's unit is 2^-32, and values up to 2^31 in magnitude fit; a share or a total beyond
// that, or a NaN, does not survive the conversion (the unfused path would carry it on).
constexpr float kPendingScale = 4294967296.f;

}  // namespace doze::kernels
