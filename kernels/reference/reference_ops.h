// Plain C++ references of the kernels, in fp32 (fp64 sums), over dense host arrays. bf16 tensors are passed
// as floats holding bf16-representable values; RoundBf16 mirrors the kernels' roundings where the model
// itself rounds.
#pragma once

#include <cstdint>
#include <vector>

namespace doze::kernels::reference {

// Rounds to the nearest bf16 value, ties to even.
float RoundBf16(float x);

// kernels/pending_residual.h's fixed point: v as a pending sum's integer, a sum as a float, and a residual
// value with its pending sum added (bf16(residual + bf16(sum))).
int64_t ToPending(float v);
float PendingValue(int64_t sum);
float WithPending(float residual, int64_t sum);

// The elements of x[n] that are NaN or infinite.
int64_t CountNonFinite(const float* x, int64_t n);

// out[i, :] = table[indices[i], :]; a negative index gives a zero row.
void GatherRows(const int32_t* indices, const float* table, float* out, int num_rows, int width);
// kernels/step_inputs.h's StageStepInputs.
void StageStepInputs(const int32_t* host_ints, int32_t* ints, int num_ints, int num_tokens,
                     int sources_offset, const int32_t* previous, int32_t* published, int num_published);

// With residual != nullptr: residual = RoundBf16(residual + x) first and the norm reads it; else the norm
// reads x.
void RmsNorm(float* residual, const float* x, const float* weight, float* out, int num_rows, int hidden,
             float eps);

// y[m, n] = x[m, k] @ w[n, k]^T (+ bias[n] when not null).
void Linear(const float* x, const float* w, const float* bias, float* y, int m, int n, int k);

// out[r, i] = silu(gate_up[r, i]) * gate_up[r, intermediate + i].
void SiluMul(const float* gate_up, float* out, int num_rows, int intermediate);

// Rotates the Q and K heads of each qkv row in place (rotate-half; cos/sin rounded to bf16, as the kernel
// does).
void Rotary(float* qkv, const int32_t* positions, const float* inv_freq, int num_tokens, int num_q_heads,
            int num_kv_heads, int head_dim);

// Hugging Face's inv_freq: 1 / theta^(2i / head_dim) in fp32.
std::vector<float> RopeInvFreq(int head_dim, double theta);

// The dense inputs of one attention call.
struct AttentionInputs {
  const float* q;               // [num_tokens, q_row_stride]
  const float* k_cache;         // [num_blocks, block_size, num_kv_heads, head_dim]
  const float* v_cache;         // same
  const int32_t* block_tables;  // [num_seqs, max_blocks_per_seq]
  const int32_t* token_seq;     // [num_tokens]
  const int32_t* context_lens;  // [num_tokens]
  int num_tokens, num_q_heads, num_kv_heads, head_dim, block_size, max_blocks_per_seq, q_row_stride;
  float scale;
};

// out[t, h, :] = softmax over the row's context of q.k * scale, times V; zeros for an empty context.
void PagedAttention(const AttentionInputs& in, float* out);

// kernels/lm_head_screen.h's screen of an [n, k] LM head, row-major rather than tiled: the int8 (bits 8) or
// int4 (bits 4) copy as signed levels and each row's scale, error factor and copy norm
// (kernels/lm_head_screen_bound.h).
struct LmHeadScreenRows {
  int bits = 8;
  std::vector<int8_t> q;  // [n, k]
  std::vector<float> scale, error, norm;
};
LmHeadScreenRows BuildLmHeadScreen(const float* w, int n, int k, int bits = 8);

// u[r, j] >= the fp32 logit x[r] . w[j] in any order of summation, as the screening kernel bounds it; fp32
// sums of x's squares in index order (the kernel's order differs: equal to rounding).
std::vector<float> LmHeadScreenUpper(const float* x, int m, const LmHeadScreenRows& screen, int n, int k);

}  // namespace doze::kernels::reference
