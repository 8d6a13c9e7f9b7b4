// The forward pass as a sequence of kernel launches on the runner's stream: what eager steps run and decode
// graphs capture.
#include <cmath>

#include "kernels/activation.h"
#include "kernels/decode_gemv.h"
#include "kernels/decode_mma.h"
#include "kernels/embedding.h"
#include "kernels/env_knob.h"
#include "kernels/ffn_gemv.h"
#include "kernels/gemv.h"
#include "kernels/lm_head_argmax.h"
#include "kernels/lm_head_screen.h"
#include "kernels/merge_residual_gemv.h"
#include "kernels/paged_attention.h"
#include "kernels/rms_norm.h"
#include "kernels/rotary_kv_cache.h"
#include "kernels/step_prologue.h"
#include "worker/backend/cuda/cuda_model_runner.h"

namespace doze {

using kernels::OutType;

void CudaModelRunner::Linear(const __nv_bfloat16* x, const __nv_bfloat16* w, const __nv_bfloat16* bias,
                             void* y, OutType out_type, int m, int n, int k) {
  if (m <= options_.gemv_max_rows && m <= kernels::kGemvMaxRows) {
    kernels::Gemv(x, w, bias, y, out_type, m, n, k, stream_);
  } else {
    gemm_->Linear(x, w, bias, y, out_type, m, n, k, stream_);
  }
}

bool CudaModelRunner::UseDecodeGemv(int num_tokens) const {
  return num_tokens <= options_.gemv_max_rows && num_tokens <= kernels::kGemvMaxRows;
}

bool CudaModelRunner::UseDecodeMma(int num_tokens) const {
  return decode_mma_fits_ && !UseDecodeGemv(num_tokens) && num_tokens <= options_.decode_mma_max_rows &&
         num_tokens <= kernels::kDecodeMmaMaxRows;
}

namespace {

// Whether the tensor-core QKV epilogues read the step's rotary cos and sin from a table computed once
// (kernels::RotaryTable) instead of computing them in every layer; DOZE_ROTARY_TABLE=0 turns it off
// (measurements).
bool UseRotaryTable() {
  static const bool enabled = kernels::EnvFlag("DOZE_ROTARY_TABLE");
  return enabled;
}

// Whether a one-row decode graph's screened greedy LM head takes the final norm (kernels::ScreenNorm) instead
// of an RmsNorm kernel before it: H100 batch 1 -1.5 us a step, batch 2 +5 us (each block's norm of two rows
// delays its stream more than the kernel's hop costs), kernels/PERF_NOTES.md. DOZE_SCREEN_NORM=0 keeps the
// kernel (measurements).
bool UseScreenNorm() {
  static const bool enabled = kernels::EnvFlag("DOZE_SCREEN_NORM");
  return enabled;
}

// Whether a one-row decode step's o_proj merges the attention's splits itself (kernels::MergeResidualGemv)
// instead of a combine kernel doing it between them; DOZE_MERGED_OPROJ=0 keeps the combine kernel
// (measurements).
bool UseMergedOProj() {
  static const bool enabled = kernels::EnvFlag("DOZE_MERGED_OPROJ");
  return enabled;
}

// Whether one-row decode steps end their layers (but the last) in kernels::FfnGemv, one kernel for gate/up
// and down whose sums the next layer's QKV and o_proj add to the residual stream; DOZE_FUSED_FFN=0 keeps the
// two GEMVs (measurements).
bool UseFusedFfnKnob() {
  static const bool enabled = kernels::EnvFlag("DOZE_FUSED_FFN");
  return enabled;
}

// Whether the tensor-core path starts a step with kernels::StepPrologue (the gather, the first norm and the
// rotary table in one kernel); DOZE_STEP_PROLOGUE=0 runs them as three (measurements).
bool UseStepPrologue() {
  static const bool enabled = kernels::EnvFlag("DOZE_STEP_PROLOGUE");
  return enabled;
}

}  // namespace

void CudaModelRunner::EnqueueModel(const StepPlan& plan) {
  StepMetadata m = MetadataViews(plan, static_cast<int32_t*>(metadata_.get()));
  const int hidden = config_.hidden_size;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  const bool mma = UseDecodeMma(plan.num_tokens);
  float2* const table = mma && UseRotaryTable() ? rotary_table_ : nullptr;
  m.rotary_table = table;
  const float* inv_freq = static_cast<const float*>(inv_freq_.get());
  const bool prologue = mma && UseStepPrologue();
  if (prologue) {
    kernels::StepPrologue(
        {m.token_ids, weights_->embed_tokens(), weights_->layer(0).input_norm, residual_, normed_, eps,
         m.positions, inv_freq, table, plan.num_tokens, hidden, config_.head_dim},
        stream_);
  } else {
    if (!plan.inputs_gather)
      kernels::GatherRows(m.token_ids, weights_->embed_tokens(), residual_, plan.num_tokens, hidden, stream_);
    if (table != nullptr)
      kernels::RotaryTable(m.positions, inv_freq, table, plan.num_tokens, config_.head_dim, stream_);
  }
  const bool screened = plan.chosen_tokens != nullptr && weights_->lm_head_screen() != nullptr &&
                        kernels::LmHeadScreenPreferred(plan.num_logits, config_.vocab_size, hidden);
  kernels::ScreenNorm screen_norm;
  if (UseDecodeGemv(plan.num_tokens)) {
    // The fused layers leave the residual stream complete: only the final norm is left, which a decode
    // graph's screened LM head takes (its rows are the graph's rows in order).
    const bool fused_ffn = UseFusedFfn(plan);
    for (int l = 0; l < config_.num_hidden_layers; ++l) EnqueueFusedLayer(l, plan, m, fused_ffn);
    if (screened && plan.graph && plan.num_logits == 1 && kernels::LmHeadScreenNormFits(hidden) &&
        UseScreenNorm()) {
      screen_norm = {residual_, weights_->final_norm(), eps, normed_};
    } else {
      kernels::RmsNorm(residual_, weights_->final_norm(), normed_, plan.num_tokens, hidden, eps, stream_);
    }
  } else {
    // Each layer ends with the next one's input norm, the last with the final norm.
    if (!prologue) {
      kernels::RmsNorm(residual_, weights_->layer(0).input_norm, normed_, plan.num_tokens, hidden, eps,
                       stream_);
    }
    for (int l = 0; l < config_.num_hidden_layers; ++l) EnqueueLayer(l, plan, m);
  }
  // A decode graph's logits rows are all its rows in order (padding included): no gather needed.
  const __nv_bfloat16* logit_rows = normed_;
  if (!plan.graph) {
    kernels::GatherRows(m.logits_indices, normed_, logit_rows_, plan.num_logits, hidden, stream_);
    logit_rows = logit_rows_;
  }
  if (screened) {
    kernels::LmHeadScreenedArgmax(logit_rows, weights_->lm_head(), weights_->lm_head_screen(),
                                  weights_->lm_head_screen_bits(), plan.chosen_tokens, plan.num_logits,
                                  config_.vocab_size, hidden, lm_head_workspace_, stream_, screen_norm);
    return;
  }
  if (plan.chosen_tokens != nullptr) {
    kernels::LmHeadArgmax(logit_rows, weights_->lm_head(), plan.chosen_tokens, plan.num_logits,
                          config_.vocab_size, hidden, lm_head_workspace_, stream_);
    return;
  }
  Linear(logit_rows, weights_->lm_head(), nullptr, logits_, OutType::kF32, plan.num_logits,
         config_.vocab_size, hidden);
}

std::pair<__nv_bfloat16*, __nv_bfloat16*> CudaModelRunner::KvCache(int layer) const {
  const size_t cache_elems = static_cast<size_t>(num_kv_blocks_) * options_.block_size * config_.kv_size();
  __nv_bfloat16* k_cache = static_cast<__nv_bfloat16*>(kv_pool_.get()) + 2 * layer * cache_elems;
  return {k_cache, k_cache + cache_elems};
}

kernels::RotaryShape CudaModelRunner::RotaryShapeOf(int rows) const {
  return {rows, config_.num_attention_heads, config_.num_key_value_heads, config_.head_dim,
          options_.block_size};
}

kernels::RotaryCacheOutput CudaModelRunner::QkvRotaryOutput(int layer, const StepMetadata& m) const {
  const auto [k_cache, v_cache] = KvCache(layer);
  return {qkv_,    m.positions, m.slot_mapping, static_cast<const float*>(inv_freq_.get()),
          k_cache, v_cache,     m.rotary_table};
}

kernels::AttentionShape CudaModelRunner::AttentionShapeOf(const StepPlan& plan) const {
  kernels::AttentionShape attention{plan.num_tokens,
                                    config_.num_attention_heads,
                                    config_.num_key_value_heads,
                                    config_.head_dim,
                                    options_.block_size,
                                    plan.table_width,
                                    plan.max_context,
                                    config_.q_size() + 2 * config_.kv_size(),
                                    1.f / std::sqrt(static_cast<float>(config_.head_dim))};
  attention.one_token_per_seq = plan.one_token_per_seq;
  return attention;
}

void CudaModelRunner::EnqueueAttention(int layer, const StepPlan& plan, const StepMetadata& m, bool rotate) {
  const kernels::RotaryCacheOutput r = QkvRotaryOutput(layer, m);  // its caches: the layer's
  const kernels::AttentionShape attention = AttentionShapeOf(plan);
  if (rotate && options_.attention_rotary && kernels::PagedAttentionRotates(attention)) {
    kernels::PagedAttentionWithRotary(qkv_, r.k_cache, r.v_cache, m.block_tables, m.token_seq, m.context_lens,
                                      attn_, attn_workspace_, attn_workspace_bytes_, attention,
                                      {r.positions, r.slot_mapping, r.inv_freq, r.k_cache, r.v_cache},
                                      stream_);
    return;
  }
  if (rotate) {
    kernels::RotaryAndCacheWrite(qkv_, r.positions, r.slot_mapping, r.inv_freq, r.k_cache, r.v_cache,
                                 RotaryShapeOf(plan.num_tokens), stream_);
  }
  kernels::PagedAttention(qkv_, r.k_cache, r.v_cache, m.block_tables, m.token_seq, m.context_lens, attn_,
                          attn_workspace_, attn_workspace_bytes_, attention, stream_);
}

void CudaModelRunner::EnqueueLayer(int layer, const StepPlan& plan, const StepMetadata& m) {
  const cuda::DeviceLayer& w = weights_->layer(layer);
  const int t = plan.num_tokens, hidden = config_.hidden_size, inter = config_.intermediate_size;
  const int qkv_width = config_.q_size() + 2 * config_.kv_size();
  const bool mma = UseDecodeMma(t);  // rotary and SwiGLU in the projections' epilogues
  if (mma) {
    kernels::DecodeMmaQkvRotary(normed_, w.qkv, w.qkv_bias, QkvRotaryOutput(layer, m), RotaryShapeOf(t),
                                hidden, mma_workspace_, stream_);
  } else {
    Linear(normed_, w.qkv, w.qkv_bias, qkv_, OutType::kBf16, t, qkv_width, hidden);
  }
  EnqueueAttention(layer, plan, m, /*rotate=*/!mma);
  ProjectionNorm(attn_, w.o_proj, w.post_norm, mma, t, config_.q_size());
  if (mma) {
    kernels::DecodeMmaSwiGlu(normed_, w.gate_up, act_, t, inter, hidden, mma_workspace_, stream_);
  } else {
    Linear(normed_, w.gate_up, nullptr, gate_up_, OutType::kBf16, t, 2 * inter, hidden);
    kernels::SiluMul(gate_up_, act_, t, inter, stream_);
  }
  const bool last = layer + 1 == config_.num_hidden_layers;
  ProjectionNorm(act_, w.down_proj, last ? weights_->final_norm() : weights_->layer(layer + 1).input_norm,
                 mma, t, inter);
}

void CudaModelRunner::ProjectionNorm(const __nv_bfloat16* x, const __nv_bfloat16* w,
                                     const __nv_bfloat16* norm_weight, bool mma, int m, int k) {
  const int hidden = config_.hidden_size;
  const kernels::ResidualNorm norm{residual_, norm_weight, normed_, static_cast<float>(config_.rms_norm_eps)};
  if (mma) return kernels::DecodeMmaResidualNorm(x, w, proj_, m, hidden, k, norm, mma_workspace_, stream_);
  Linear(x, w, nullptr, proj_, OutType::kBf16, m, hidden, k);
  kernels::AddRmsNorm(residual_, proj_, norm_weight, normed_, m, hidden, norm.eps, stream_);
}

bool CudaModelRunner::MergedOProjTakes(const StepPlan& plan) const {
  return UseMergedOProj() && plan.one_token_per_seq &&
         kernels::MergeResidualGemvTakes(plan.num_tokens, config_.q_size());
}

bool CudaModelRunner::UseFusedFfn(const StepPlan& plan) const {
  return UseFusedFfnKnob() && MergedOProjTakes(plan) && config_.num_hidden_layers > 1 &&
         kernels::FfnGemvTakes(plan.num_tokens, config_.hidden_size, config_.intermediate_size);
}

bool CudaModelRunner::EnqueueAttentionMergedOProj(int layer, const StepPlan& plan, const StepMetadata& m,
                                                  int64_t* pending) {
  if (!MergedOProjTakes(plan)) return false;
  const auto [k_cache, v_cache] = KvCache(layer);
  const kernels::AttentionPartials partials = kernels::PagedAttentionUnmerged(
      qkv_, k_cache, v_cache, m.block_tables, m.token_seq, m.context_lens, attn_, attn_workspace_,
      attn_workspace_bytes_, AttentionShapeOf(plan), stream_);
  kernels::MergeResidualGemv(partials, weights_->layer(layer).o_proj, residual_, pending, config_.hidden_size,
                             stream_);
  return true;
}

// Four fused GEMVs and the attention: the norms run in the QKV and gate/up prologues, rotary and the KV write
// in the QKV epilogue, SwiGLU in the gate/up epilogue, and the residual adds in the o_proj and down
// epilogues. With `fused_ffn` gate/up and down are one kernel in every layer but the last, leaving down's
// sums in pending_, which the next layer's QKV (its norm's input) and o_proj (its residual update, zeroing
// them) add to the residual stream.
void CudaModelRunner::EnqueueFusedLayer(int layer, const StepPlan& plan, const StepMetadata& m,
                                        bool fused_ffn) {
  const cuda::DeviceLayer& w = weights_->layer(layer);
  const int t = plan.num_tokens, hidden = config_.hidden_size, inter = config_.intermediate_size;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  int64_t* const pending = fused_ffn && layer > 0 ? pending_ : nullptr;
  kernels::NormQkvRotaryGemv({residual_, w.input_norm, eps, pending}, w.qkv, w.qkv_bias,
                             QkvRotaryOutput(layer, m), RotaryShapeOf(t), hidden, stream_);
  if (!EnqueueAttentionMergedOProj(layer, plan, m, pending)) {
    EnqueueAttention(layer, plan, m, /*rotate=*/false);
    kernels::ResidualGemv(attn_, w.o_proj, residual_, t, hidden, config_.q_size(), stream_);
  }
  if (fused_ffn && layer + 1 < config_.num_hidden_layers) {
    kernels::FfnGemv({residual_, w.post_norm, eps}, w.gate_up, w.down_proj, pending_, hidden, inter, stream_);
    return;
  }
  kernels::NormSwiGluGemv({residual_, w.post_norm, eps}, w.gate_up, act_, t, inter, hidden, stream_);
  kernels::ResidualGemv(act_, w.down_proj, residual_, t, hidden, inter, stream_);
}

}  // namespace doze
