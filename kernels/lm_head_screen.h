// The greedy LM head for a few rows in about half the bytes: token[r] = argmax_j (x[r] . w[j]), the fp32
// logits' argmax as kernels/lm_head_argmax.h finds it, reading an int8 copy of w instead of the bf16 matrix.
//
// The copy (BuildLmHeadScreen, once at upload) keeps one scale a vocabulary row and two error factors, so
// that an integer logit a_j (x as 16-bit integers, dp2a, exact int32 sums) bounds the fp32 logit from above
// by u_j = a_j + B_j for any x (kernels/lm_head_screen_bound.h). Each block of vocabulary rows (128, or a
// multiple where one wave of blocks would not cover the vocabulary) then computes in fp32, from bf16 x and w,
// only its row of largest a_j (lowest id on ties), and keeps the largest u_j of its other rows. The final
// kernel takes the best of the blocks' exact logits, E; where some unevaluated row has u_j >= E, it evaluates
// every row with u_j >= E (a pass over the bounds, which the first kernel wrote). So every row that could
// beat or tie E is evaluated exactly: the token is the argmax of the fp32 logits (lowest id on ties),
// whatever the weights, from n k bytes of int8 where the bf16 pass reads 2 n k. The fp32 sums run in another
// order than LmHeadArgmax's: where two logits are within rounding of each other the choice may differ.
//
// A screen holds one copy. Where k is a multiple of 128 the runner builds an int4 copy instead (n k / 2
// bytes; levels -7..7 a row, stored with an offset of 8; LmHeadScreenDefaultBits). Its bound is too loose for
// one exact row a block to settle the token (on random rows of the 0.5B shape ~1% of the vocabulary lies
// within it of the best), so each block evaluates its best row exactly and publishes that logit (an atomic
// maximum, E, an x row), and a second kernel evaluates exactly every row whose bound reaches E. E is some
// row's exact logit, so at most the final best: the rows left out cannot reach it, and the token is the same
// as the int8 screen's.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace doze::kernels {

// Whether a screen can be built for an [n, k] LM head: k a multiple of 64, at most 4,096.
bool LmHeadScreenSupportsShape(int n, int k);

// Whether LmHeadScreenedArgmax takes m rows (1 to 4) over such a head; DOZE_LM_HEAD_SCREEN=0 turns it off
// (measurements).
bool LmHeadScreenPreferred(int m, int n, int k);

// Whether the int4 copy can serve rows of k: k a multiple of 128.
bool LmHeadScreen4Fits(int k);

// The copy a screen of rows of k should hold: 4 (int4) where LmHeadScreen4Fits, unless DOZE_LM_HEAD_SCREEN4=0
// (measurements), else 8 (int8).
int LmHeadScreenDefaultBits(int k);

// Bytes of the screen of an [n, k] head in the copy of `bits` (8 or 4): the copy in tiles of 32 rows
// ([n / 32][k * bits / 128][32][16 bytes], n rounded up to 32), then three floats a row (scale, error factor,
// norm of the copy) (kernels/lm_head_screen_layout.cuh).
size_t LmHeadScreenBytes(int n, int k, int bits);

// Writes the screen of w in the copy of `bits` into `screen` (zeros for the rows past n). Synchronous with
// `stream` only.
void BuildLmHeadScreen(const __nv_bfloat16* w,  // [n, k]
                       void* screen,            // [LmHeadScreenBytes(n, k, bits)]
                       int n, int k, int bits, cudaStream_t stream);

// Bytes of workspace LmHeadScreenedArgmax needs for an n-row head (any m it takes): the bounds of every row,
// each block's exact best and the int4 screen's published logit (which the final kernel resets: where
// another kernel overwrites it, the next call is slower, never wrong).
size_t LmHeadScreenWorkspaceBytes(int n);

// The final RMSNorm taken into LmHeadScreenedArgmax: its rows are RmsNorm(residual) * weight, computed by
// every block with RmsNorm's arithmetic (bit for bit kernels::RmsNorm's output) and written to `out` by the
// first.
struct ScreenNorm {
  const __nv_bfloat16* residual = nullptr;  // [m, k]
  const __nv_bfloat16* weight = nullptr;    // [k]
  float eps = 0.f;
  __nv_bfloat16* out = nullptr;  // [m, k]
};

// Whether LmHeadScreenedArgmax takes a ScreenNorm for rows of k (at most 1,024).
bool LmHeadScreenNormFits(int k);

// tokens[r] = the lowest j of the largest fp32 x[r] . w[j] for r < m (1 <= m <= 4). Launched with
// programmatic dependent launch: each block's first tiles of the copy load before the wait on the kernel
// that writes x. With norm.residual the rows are the residual stream's, normalized (ScreenNorm), and x is
// not read. `screen` holds the copy of `bits` (BuildLmHeadScreen(w, ..., bits)).
void LmHeadScreenedArgmax(const __nv_bfloat16* x,  // [m, k], or nullptr with norm.residual
                          const __nv_bfloat16* w,  // [n, k]
                          const void* screen,      // [LmHeadScreenBytes(n, k, bits)]
                          int bits,
                          int32_t* tokens,  // [m]
                          int m, int n, int k,
                          void* workspace,  // [LmHeadScreenWorkspaceBytes(n)]
                          cudaStream_t stream, const ScreenNorm& norm = {});

}  // namespace doze::kernels
