// The model's weights on the GPU in bf16, with Q/K/V fused into one matrix (and one bias) and gate/up fused
// into one matrix, so each layer runs four matrix products.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/backend/cuda/device_memory.h"
#include "worker/model/model_config.h"
#include "worker/model/model_weights.h"

namespace doze::cuda {

struct DeviceLayer {
  const __nv_bfloat16* input_norm;  // [hidden]
  const __nv_bfloat16* qkv;         // [q_size + 2 * kv_size, hidden]: q_proj, k_proj, v_proj rows
  const __nv_bfloat16* qkv_bias;    // [q_size + 2 * kv_size]
  const __nv_bfloat16* o_proj;      // [hidden, q_size]
  const __nv_bfloat16* post_norm;   // [hidden]
  const __nv_bfloat16* gate_up;     // [2 * intermediate, hidden]: gate_proj rows, then up_proj rows
  const __nv_bfloat16* down_proj;   // [hidden, intermediate]
};

// Owns one device allocation holding every weight.
class DeviceWeights {
 public:
  // Converts (from bf16, fp16 or fp32) and copies `weights`; InvalidArgument when a shape disagrees with
  // `config`.
  static absl::StatusOr<std::unique_ptr<DeviceWeights>> Upload(const ModelConfig& config,
                                                               const ModelWeights& weights);

  const __nv_bfloat16* embed_tokens() const { return embed_tokens_; }  // [vocab, hidden]
  const __nv_bfloat16* lm_head() const { return lm_head_; }            // [vocab, hidden]
  const __nv_bfloat16* final_norm() const { return final_norm_; }      // [hidden]
  // The LM head's screen (kernels/lm_head_screen.h) in the copy of lm_head_screen_bits() (the int4 one where
  // the hidden size takes it), built at upload; null where the shape or DOZE_LM_HEAD_SCREEN=0 rules it out.
  const void* lm_head_screen() const { return lm_head_screen_; }  // [LmHeadScreenBytes(vocab, hidden, bits)]
  int lm_head_screen_bits() const { return lm_head_screen_bits_; }
  const DeviceLayer& layer(int i) const { return layers_[i]; }
  // Size of the weights, on the device or (offloaded) in host memory.
  size_t bytes() const { return bytes_; }
  // Whether the weights are in host memory (Offload) rather than on the device.
  bool offloaded() const { return storage_.get() == nullptr; }

  // Copies the weights to pinned host memory (allocated on the first call, kept for the process's lifetime)
  // and frees the device storage; the pointers above are invalid until Restore. Synchronizes `stream`.
  // Nothing to do when already offloaded.
  absl::Status Offload(cudaStream_t stream);
  // Allocates the device storage again, lays the tensors out over it and copies the weights back byte for
  // byte; synchronizes `stream`. ResourceExhausted when the device has too little memory (the weights stay
  // offloaded). Nothing to do when not offloaded.
  absl::Status Restore(cudaStream_t stream);

 private:
  DeviceWeights(const ModelConfig& config, bool tied) : config_(config), tied_(tied) {}
  // Lays every tensor out over `base` (null for the sizing pass); returns the bytes used.
  size_t Layout(void* base);

  ModelConfig config_;
  bool tied_;  // lm_head shares embed_tokens
  size_t bytes_ = 0;
  DeviceBuffer storage_;
  PinnedBuffer host_copy_;  // [bytes_], the weights while offloaded
  const __nv_bfloat16* embed_tokens_ = nullptr;
  const __nv_bfloat16* lm_head_ = nullptr;
  const __nv_bfloat16* final_norm_ = nullptr;
  const void* lm_head_screen_ = nullptr;
  int lm_head_screen_bits_ = 0;
  std::vector<DeviceLayer> layers_;
};

}  // namespace doze::cuda
