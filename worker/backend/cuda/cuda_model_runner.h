// The CUDA backend: the Qwen2 forward pass on one GPU in bf16 with fp32 accumulation, over a paged KV cache
// sized from the memory left after the weights. Decode steps replay CUDA graphs captured per (batch, context)
// bucket.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>
#include <utility>

#include "absl/status/statusor.h"
#include "kernels/decode_mma.h"
#include "kernels/gemm.h"
#include "kernels/paged_attention.h"
#include "kernels/rotary_kv_cache.h"
#include "worker/backend/cuda/cuda_sampler.h"
#include "worker/backend/cuda/device_memory.h"
#include "worker/backend/cuda/device_weights.h"
#include "worker/engine/model_runner.h"
#include "worker/model/checkpoint.h"

namespace doze {

struct CudaRunnerOptions {
  double gpu_memory_fraction = 0.9;  // of the device's memory, weights included, the process may hold
  int num_kv_blocks = 0;             // > 0: exactly this many KV blocks instead of what the fraction leaves
  int block_size = 16;               // tokens per KV block, a multiple of 16 (kernels/paged_attention.h)
  int max_num_tokens = 8192;         // rows per step the activations are first sized for (grown on demand)
  int max_num_seqs = 256;            // sequences per step, and the largest decode graph
  int max_model_len = 0;             // longest context; 0: the config's max_position_embeddings
  bool use_cuda_graphs = true;
  // Steps of at most this many rows (<= 8) take the fused decode GEMVs; on the H100 they win at 1 and 2 rows
  // and lose at 4 to the tensor-core kernels below (kernels/PERF_NOTES.md).
  int gemv_max_rows = 2;
  // Steps of more rows than that, up to this many (<= kernels::kDecodeMmaMaxRows), take the tensor-core
  // decode kernels (kernels/decode_mma.h) instead of cuBLASLt; 0 turns them off. On the H100, since they run
  // on wgmma with the k splits added in clusters, they measured faster than cuBLASLt at every batch tried,
  // 4 to 64 rows (kernels/PERF_NOTES.md).
  int decode_mma_max_rows = 64;
  // Decode steps whose QKV comes from cuBLASLt rotate Q and the new K, and write the new K and V into the
  // cache, in the attention kernel (kernels::PagedAttentionWithRotary) instead of a RotaryAndCacheWrite
  // before it, where the attention can.
  bool attention_rotary = true;
  // Steps whose rows all take their largest logit (temperature 0, no logit edits) choose the tokens in the
  // LM head's pass (kernels::LmHeadArgmax where kernels::LmHeadArgmaxPreferred; kernels::LmHeadScreenedArgmax
  // at the few rows it takes) instead of writing fp32 logits for the sampler's argmax.
  bool greedy_lm_head = true;
};

// Implements ModelRunner on the GPU. Forward must be called from one thread (the engine thread). A CUDA error
// after construction ends the process, naming the failed call, file and line.
class CudaModelRunner : public ModelRunner {
 public:
  // Uploads the weights of `checkpoint` (which may be dropped afterwards) and allocates the KV pool.
  static absl::StatusOr<std::unique_ptr<CudaModelRunner>> Create(const Checkpoint& checkpoint,
                                                                 const CudaRunnerOptions& options);
  // Same from weights held elsewhere (tests build small ones in memory).
  static absl::StatusOr<std::unique_ptr<CudaModelRunner>> Create(const ModelConfig& config,
                                                                 const ModelWeights& weights,
                                                                 const CudaRunnerOptions& options);
  ~CudaModelRunner() override;

  const ModelConfig& config() const override { return config_; }
  int block_size() const override { return options_.block_size; }
  int num_kv_blocks() const override { return num_kv_blocks_; }
  // Runs the step and copies the requested logits to host memory.
  absl::StatusOr<LogitsView> Forward(const BatchMetadata& batch) override;
  bool SupportsDeviceSampling() const override { return true; }
  // Runs the step and samples each logits row on the GPU (CudaSampler): only token ids come back.
  absl::StatusOr<std::vector<int32_t>> ForwardAndSample(const BatchMetadata& batch,
                                                        absl::Span<const DeviceSamplingRow> rows) override;
  bool SupportsAsyncSampling() const override { return true; }
  // ForwardAndSample's work enqueued on the stream; rows with a token source read it from the previous
  // submitted step's sampled tokens on the device (kernels::StageStepInputs), which also brings the previous
  // step's tokens to the sampler's pinned memory for CollectSamples.
  absl::Status SubmitForwardAndSample(const BatchMetadata& batch,
                                      absl::Span<const DeviceSamplingRow> rows) override;
  absl::StatusOr<std::vector<int32_t>> CollectSamples() override;

  // Runs the step and leaves the logits on the device: [batch.num_logits(), vocab] fp32, valid until the next
  // call, ordered on stream(). For sampling on the GPU (kernels/sampling.h).
  absl::StatusOr<const float*> ForwardOnDevice(const BatchMetadata& batch);
  cudaStream_t stream() const { return stream_; }
  // Steps whose tokens the LM head's pass chose (LmHeadArgmax or LmHeadScreenedArgmax) rather than a sampling
  // of logits.
  int64_t lm_head_chosen_steps() const { return lm_head_chosen_steps_; }
  // Number of decode graphs captured so far.
  int num_graphs() const { return static_cast<int>(graphs_.size()); }
  // Whether a step of `num_tokens` rows takes the tensor-core decode kernels (kernels/decode_mma.h).
  bool UseDecodeMma(int num_tokens) const;
  // Device bytes of the weights and of the KV pool (0 while asleep).
  size_t weights_bytes() const { return weights_->bytes(); }
  size_t kv_pool_bytes() const { return kv_pool_.bytes(); }
  bool asleep() const { return asleep_; }

  // Frees the KV pool, the activations, the decode graphs and the sampler's buffers, and moves the weights to
  // pinned host memory (kept for the process's lifetime, so later sleeps don't pin again). Forward fails
  // until Wake. Nothing to do when asleep.
  absl::Status Sleep() override;
  // Copies the weights back and allocates a KV pool of num_kv_blocks() blocks and the activations of
  // start-up; graphs are captured again as steps need them. Nothing to do when awake. A failed Wake (another
  // process took the memory) leaves the runner asleep and may be retried.
  absl::Status Wake() override;

 private:
  // The padded sizes one step runs at; decode steps of one bucket share them, and so a graph.
  struct StepPlan {
    int num_tokens, num_logits, num_seqs, max_context, table_width;
    bool graph;
    bool one_token_per_seq;  // every sequence has one token in the step (decode): see AttentionShape
    // kernels::StageStepInputs writes the rows' embeddings into residual_ (steps of the fused decode GEMVs),
    // so the forward pass starts without a GatherRows kernel.
    bool inputs_gather = false;
    // Greedy rows: the LM head's pass writes num_logits tokens here (the sampler's ChosenTokens) instead of
    // the logits.
    int32_t* chosen_tokens = nullptr;
  };
  // Device views of the step's metadata, carved from metadata_ at offsets that depend on the plan only.
  struct StepMetadata {
    int32_t *token_ids, *positions, *slot_mapping, *token_seq, *context_lens, *logits_indices, *block_tables,
        *token_sources;
    // The step's cos and sin of every rotary pair (kernels::RotaryTable), where the QKV epilogues read them
    // from a table; else nullptr.
    const float2* rotary_table = nullptr;
  };

  CudaModelRunner(const ModelConfig& config, const CudaRunnerOptions& options);
  absl::Status Init(const ModelWeights& weights);
  absl::Status AllocateKvPool();
  // Bytes of one KV block over every layer, K and V.
  size_t KvBlockBytes() const;
  // Waits for the stream and destroys every captured decode graph.
  void DestroyGraphs();
  absl::Status EnsureCapacity(int num_tokens, int num_logits, int num_seqs);

  // Runs the step on the stream. With `greedy` (every row takes its largest logit), where
  // kernels::LmHeadArgmaxPreferred, the LM head's pass chooses the tokens into the sampler's ChosenTokens
  // instead of writing logits_: returns whether it did.
  absl::StatusOr<bool> RunStep(const BatchMetadata& batch, bool greedy);
  StepPlan PlanStep(const BatchMetadata& batch) const;
  StepMetadata MetadataViews(const StepPlan& plan, int32_t* base) const;
  // Stages the step's metadata in host_metadata_ and enqueues kernels::StageStepInputs, which copies it to
  // metadata_, takes the rows' pending tokens and publishes the sampler's previous tokens.
  void UploadMetadata(const BatchMetadata& batch, const StepPlan& plan);
  // Enqueues the whole forward pass of `plan` on stream_ (also what a graph captures).
  void EnqueueModel(const StepPlan& plan);
  // Whether a step of `num_tokens` rows takes the fused decode GEMVs (kernels/decode_gemv.h).
  bool UseDecodeGemv(int num_tokens) const;
  // Bytes of the tensor-core kernels' workspace for the model's projections at up to `num_tokens` rows.
  size_t DecodeMmaWorkspaceBytes(int num_tokens) const;
  // Layer `layer`'s K and V caches in kv_pool_: [num_kv_blocks, block_size, num_kv_heads, head_dim] each.
  std::pair<__nv_bfloat16*, __nv_bfloat16*> KvCache(int layer) const;
  // The rotary's shape at `rows` rows, and where the rotated QKV rows and layer `layer`'s new K and V go.
  kernels::RotaryShape RotaryShapeOf(int rows) const;
  kernels::RotaryCacheOutput QkvRotaryOutput(int layer, const StepMetadata& m) const;
  void EnqueueLayer(int layer, const StepPlan& plan, const StepMetadata& m);
  void EnqueueFusedLayer(int layer, const StepPlan& plan, const StepMetadata& m, bool fused_ffn);
  // The attention of `layer`; with `rotate`, Q and the new K are unrotated and the new K and V not yet in the
  // cache (cuBLASLt's QKV): rotated and written by the attention itself where it can
  // (kernels::PagedAttentionRotates), else by RotaryAndCacheWrite first.
  void EnqueueAttention(int layer, const StepPlan& plan, const StepMetadata& m, bool rotate);
  // The attention of `plan`'s rows over their paged caches (the plan's bucket of contexts).
  kernels::AttentionShape AttentionShapeOf(const StepPlan& plan) const;
  // Whether `plan`'s steps take EnqueueAttentionMergedOProj, and with it kernels::FfnGemv (UseFusedFfn).
  bool MergedOProjTakes(const StepPlan& plan) const;
  bool UseFusedFfn(const StepPlan& plan) const;
  // A one-row step's attention and o_proj with the attention's split merge done by o_proj
  // (kernels::MergeResidualGemv), where that kernel takes the model (MergedOProjTakes); returns false,
  // enqueueing nothing, where it does not. o_proj first adds `pending` (pending_ or nullptr) to the residual.
  bool EnqueueAttentionMergedOProj(int layer, const StepPlan& plan, const StepMetadata& m, int64_t* pending);
  void Linear(const __nv_bfloat16* x, const __nv_bfloat16* w, const __nv_bfloat16* bias, void* y,
              kernels::OutType out_type, int m, int n, int k);
  // A projection without bias to the hidden size (o_proj, down_proj), added to the residual stream, then the
  // norm of `norm_weight` into normed_ (kernels::ResidualNorm): the tensor-core kernels when `mma`.
  void ProjectionNorm(const __nv_bfloat16* x, const __nv_bfloat16* w, const __nv_bfloat16* norm_weight,
                      bool mma, int m, int k);
  void RunDecodeGraph(const StepPlan& plan);

  ModelConfig config_;
  CudaRunnerOptions options_;
  const bool decode_mma_fits_;  // the model's projections have the sizes kernels/decode_mma.h needs
  int num_kv_blocks_ = 0;
  bool asleep_ = false;
  int max_blocks_per_seq_ = 0;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t metadata_copied_ = nullptr;
  std::unique_ptr<kernels::GemmContext> gemm_;
  std::unique_ptr<cuda::DeviceWeights> weights_;
  cuda::DeviceBuffer kv_pool_;   // [layers, 2 (K, V), num_kv_blocks, block_size, num_kv_heads, head_dim]
  cuda::DeviceBuffer inv_freq_;  // [head_dim / 2] fp32

  // Activations, sized for capacity_tokens_ rows and capacity_logits_ logits rows.
  int capacity_tokens_ = 0, capacity_logits_ = 0, capacity_seqs_ = 0;
  cuda::DeviceBuffer activations_;
  __nv_bfloat16 *residual_ = nullptr, *normed_ = nullptr, *qkv_ = nullptr, *attn_ = nullptr, *proj_ = nullptr,
                *gate_up_ = nullptr, *act_ = nullptr, *logit_rows_ = nullptr;
  float* logits_ = nullptr;  // [capacity_logits_, vocab]
  // [hidden]: kernels::FfnGemv's sums not yet added to residual_ (kernels/pending_residual.cuh); zero between
  // steps (the last layer never leaves any).
  int64_t* pending_ = nullptr;
  float* attn_workspace_ = nullptr;
  size_t attn_workspace_bytes_ = 0;
  kernels::DecodeMmaWorkspace mma_workspace_;
  // kernels::LmHeadArgmaxWorkspaceBytes(capacity_logits_), or LmHeadScreenWorkspaceBytes where larger
  void* lm_head_workspace_ = nullptr;
  float2* rotary_table_ = nullptr;    // [capacity_tokens_, head_dim / 2]: kernels::RotaryTable of the step
  cuda::DeviceBuffer metadata_;       // int32, laid out by MetadataViews
  cuda::PinnedBuffer host_metadata_;  // same layout, staged here (read by kernels::StageStepInputs)
  cuda::PinnedBuffer host_logits_;    // [capacity_logits_, vocab]

  // (num_tokens, max_context, tokens chosen in the LM head's pass) -> decode graph
  std::map<std::tuple<int, int, bool>, cudaGraphExec_t> graphs_;
  int32_t* graph_chosen_tokens_ = nullptr;  // the ChosenTokens the captured greedy graphs write
  std::unique_ptr<CudaSampler> sampler_;    // made on the first ForwardAndSample
  int64_t lm_head_chosen_steps_ = 0;
  int previous_sampled_rows_ = 0;  // rows the latest step sampled on the device: what token sources may read
};

}  // namespace doze
