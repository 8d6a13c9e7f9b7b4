#include "worker/backend/cuda/device_weights.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kernels/cuda_check.h"
#include "kernels/lm_head_screen.h"
#include "kernels/nonfinite.h"
#include "worker/common/half.h"
#include "worker/common/status_macros.h"
#include "worker/model/weight_values.h"

namespace doze::cuda {
namespace {

using bf16 = __nv_bfloat16;

absl::Status CheckShape(const TensorView& t, std::vector<int64_t> want, const std::string& name) {
  if (t.data != nullptr && t.shape == want) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("weight ", name, " has shape [",
                                                 absl::StrJoin(t.shape, ", "), "], expected [",
                                                 absl::StrJoin(want, ", "), "]"));
}

// Copies `t` as bf16 to `dst`: bf16 straight from the mapped file, other types widened and rounded in chunks.
void CopyAsBf16(const TensorView& t, bf16* dst) {
  if (t.dtype == DType::kBF16) {
    CUDA_CHECK(cudaMemcpy(dst, t.data, t.nbytes(), cudaMemcpyHostToDevice));
    return;
  }
  constexpr int64_t kChunk = 1 << 20;
  std::vector<float> wide(kChunk);
  std::vector<uint16_t> narrow(kChunk);
  for (int64_t first = 0; first < t.num_elements(); first += kChunk) {
    const int64_t count = std::min(kChunk, t.num_elements() - first);
    ToFloat(t, first, count, wide.data());
    for (int64_t i = 0; i < count; ++i) narrow[i] = FloatToBf16(wide[i]);
    CUDA_CHECK(cudaMemcpy(dst + first, narrow.data(), count * sizeof(uint16_t), cudaMemcpyHostToDevice));
  }
}

absl::Status CheckLayer(const ModelConfig& c, const LayerWeights& w, int l) {
  const int64_t hidden = c.hidden_size, q = c.q_size(), kv = c.kv_size(), inter = c.intermediate_size;
  const std::string p = absl::StrCat("layers.", l, ".");
  RETURN_IF_ERROR(CheckShape(w.input_layernorm, {hidden}, p + "input_layernorm"));
  RETURN_IF_ERROR(CheckShape(w.q_proj, {q, hidden}, p + "q_proj"));
  RETURN_IF_ERROR(CheckShape(w.k_proj, {kv, hidden}, p + "k_proj"));
  RETURN_IF_ERROR(CheckShape(w.v_proj, {kv, hidden}, p + "v_proj"));
  RETURN_IF_ERROR(CheckShape(w.q_bias, {q}, p + "q_bias"));
  RETURN_IF_ERROR(CheckShape(w.k_bias, {kv}, p + "k_bias"));
  RETURN_IF_ERROR(CheckShape(w.v_bias, {kv}, p + "v_bias"));
  RETURN_IF_ERROR(CheckShape(w.o_proj, {hidden, q}, p + "o_proj"));
  RETURN_IF_ERROR(CheckShape(w.post_attention_layernorm, {hidden}, p + "post_attention_layernorm"));
  RETURN_IF_ERROR(CheckShape(w.gate_proj, {inter, hidden}, p + "gate_proj"));
  RETURN_IF_ERROR(CheckShape(w.up_proj, {inter, hidden}, p + "up_proj"));
  return CheckShape(w.down_proj, {hidden, inter}, p + "down_proj");
}

absl::Status CheckWeights(const ModelConfig& c, const ModelWeights& w) {
  if (static_cast<int>(w.layers.size()) != c.num_hidden_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat(w.layers.size(), " layers, config says ", c.num_hidden_layers));
  }
  RETURN_IF_ERROR(CheckShape(w.embed_tokens, {c.vocab_size, c.hidden_size}, "embed_tokens"));
  RETURN_IF_ERROR(CheckShape(w.lm_head, {c.vocab_size, c.hidden_size}, "lm_head"));
  RETURN_IF_ERROR(CheckShape(w.norm, {c.hidden_size}, "norm"));
  for (int l = 0; l < c.num_hidden_layers; ++l) RETURN_IF_ERROR(CheckLayer(c, w.layers[l], l));
  return absl::OkStatus();
}

// Whether the greedy LM head can take a screen for any row count it serves.
bool HasScreen(const ModelConfig& c) {
  return kernels::LmHeadScreenPreferred(1, c.vocab_size, c.hidden_size);
}

}  // namespace

size_t DeviceWeights::Layout(void* base) {
  const ModelConfig& c = config_;
  const bool tied = tied_;
  BumpAllocator arena(base);
  const size_t hidden = c.hidden_size, q = c.q_size(), kv = c.kv_size(), inter = c.intermediate_size;
  embed_tokens_ = arena.Take<bf16>(c.vocab_size * hidden);
  lm_head_ = tied ? embed_tokens_ : arena.Take<bf16>(c.vocab_size * hidden);
  final_norm_ = arena.Take<bf16>(hidden);
  lm_head_screen_bits_ = kernels::LmHeadScreenDefaultBits(c.hidden_size);
  lm_head_screen_ =
      HasScreen(c)
          ? arena.Take<char>(kernels::LmHeadScreenBytes(c.vocab_size, c.hidden_size, lm_head_screen_bits_))
          : nullptr;
  layers_.resize(c.num_hidden_layers);
  for (DeviceLayer& layer : layers_) {
    layer.input_norm = arena.Take<bf16>(hidden);
    layer.qkv = arena.Take<bf16>((q + 2 * kv) * hidden);
    layer.qkv_bias = arena.Take<bf16>(q + 2 * kv);
    layer.o_proj = arena.Take<bf16>(hidden * q);
    layer.post_norm = arena.Take<bf16>(hidden);
    layer.gate_up = arena.Take<bf16>(2 * inter * hidden);
    layer.down_proj = arena.Take<bf16>(hidden * inter);
  }
  return arena.used();
}

absl::StatusOr<std::unique_ptr<DeviceWeights>> DeviceWeights::Upload(const ModelConfig& c,
                                                                     const ModelWeights& w) {
  RETURN_IF_ERROR(CheckWeights(c, w));
  const bool tied = w.tied();
  std::unique_ptr<DeviceWeights> out(new DeviceWeights(c, tied));
  out->bytes_ = out->Layout(nullptr);
  RETURN_IF_ERROR(out->storage_.Allocate(out->bytes_, "weights"));
  out->Layout(out->storage_.get());
  DeviceBuffer non_finite;  // [1] unsigned long long: the NaN and infinite values copied
  RETURN_IF_ERROR(non_finite.Allocate(sizeof(unsigned long long), "the weights' check"));
  auto* counter = static_cast<unsigned long long*>(non_finite.get());
  CUDA_CHECK(cudaMemset(counter, 0, sizeof(unsigned long long)));
  const auto copy = [counter](const TensorView& t, const bf16* dst) {
    CopyAsBf16(t, const_cast<bf16*>(dst));
    kernels::CountNonFinite(dst, t.num_elements(), counter, nullptr);
  };
  copy(w.embed_tokens, out->embed_tokens_);
  if (!tied) copy(w.lm_head, out->lm_head_);
  copy(w.norm, out->final_norm_);
  if (out->lm_head_screen_ != nullptr) {
    kernels::BuildLmHeadScreen(out->lm_head_, const_cast<void*>(out->lm_head_screen_), c.vocab_size,
                               c.hidden_size, out->lm_head_screen_bits_, nullptr);
    CUDA_CHECK(cudaStreamSynchronize(nullptr));
  }
  const size_t hidden = c.hidden_size, q = c.q_size(), kv = c.kv_size(), inter = c.intermediate_size;
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const LayerWeights& src = w.layers[l];
    const DeviceLayer& dst = out->layers_[l];
    copy(src.input_layernorm, dst.input_norm);
    copy(src.q_proj, dst.qkv);
    copy(src.k_proj, dst.qkv + q * hidden);
    copy(src.v_proj, dst.qkv + (q + kv) * hidden);
    copy(src.q_bias, dst.qkv_bias);
    copy(src.k_bias, dst.qkv_bias + q);
    copy(src.v_bias, dst.qkv_bias + q + kv);
    copy(src.o_proj, dst.o_proj);
    copy(src.post_attention_layernorm, dst.post_norm);
    copy(src.gate_proj, dst.gate_up);
    copy(src.up_proj, dst.gate_up + inter * hidden);
    copy(src.down_proj, dst.down_proj);
  }
  unsigned long long copied_non_finite = 0;
  CUDA_CHECK(cudaMemcpy(&copied_non_finite, counter, sizeof(copied_non_finite), cudaMemcpyDeviceToHost));
  if (copied_non_finite != 0) {
    RETURN_IF_ERROR(CheckWeightsFinite(w, "the checkpoint"));
    // Finite in the file, past bf16's range once rounded (an fp32 checkpoint).
    return absl::InvalidArgumentError(
        absl::StrCat("the checkpoint: ", copied_non_finite, " weights are infinite once rounded to bf16"));
  }
  return out;
}

absl::Status DeviceWeights::Offload(cudaStream_t stream) {
  if (offloaded()) return absl::OkStatus();
  if (host_copy_.get() == nullptr) RETURN_IF_ERROR(host_copy_.Allocate(bytes_, "weights while asleep"));
  CUDA_CHECK(cudaMemcpyAsync(host_copy_.get(), storage_.get(), bytes_, cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
  storage_ = DeviceBuffer();
  return absl::OkStatus();
}

absl::Status DeviceWeights::Restore(cudaStream_t stream) {
  if (!offloaded()) return absl::OkStatus();
  RETURN_IF_ERROR(storage_.Allocate(bytes_, "weights"));
  Layout(storage_.get());
  CUDA_CHECK(cudaMemcpyAsync(storage_.get(), host_copy_.get(), bytes_, cudaMemcpyHostToDevice, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
  return absl::OkStatus();
}

}  // namespace doze::cuda
