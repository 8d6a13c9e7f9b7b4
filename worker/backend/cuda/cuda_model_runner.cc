#include "worker/backend/cuda/cuda_model_runner.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/cuda_check.h"
#include "kernels/embedding.h"
#include "kernels/env_knob.h"
#include "kernels/lm_head_argmax.h"
#include "kernels/lm_head_screen.h"
#include "kernels/paged_attention.h"
#include "kernels/step_inputs.h"
#include "worker/backend/cpu/batch_validation.h"
#include "worker/common/logging.h"
#include "worker/common/status_macros.h"

namespace doze {
namespace {

constexpr int kMinContextBucket = 256;

int NextPowerOfTwo(int x) {
  int p = 1;
  while (p < x) p <<= 1;
  return p;
}

// Decode batches are padded to 1, 2, 4, 8, then multiples of 8 up to 64, then multiples of 32.
int BatchBucket(int num_seqs) {
  if (num_seqs <= 8) return NextPowerOfTwo(num_seqs);
  if (num_seqs <= 64) return (num_seqs + 7) / 8 * 8;
  return (num_seqs + 31) / 32 * 32;
}

absl::Status CheckSupported(const ModelConfig& c) {
  const bool ok = c.hidden_size % 8 == 0 && c.intermediate_size % 8 == 0 &&
                  (c.head_dim == 64 || c.head_dim == 128) && c.num_key_value_heads > 0 &&
                  c.num_attention_heads % c.num_key_value_heads == 0 &&
                  c.num_attention_heads / c.num_key_value_heads <= 8;
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("the CUDA backend needs hidden and intermediate sizes divisible by 8, head_dim 64 or 128 "
                   "and at most 8 query "
                   "heads per KV head; got hidden ",
                   c.hidden_size, ", intermediate ", c.intermediate_size, ", head_dim ", c.head_dim,
                   ", heads ", c.num_attention_heads, "/", c.num_key_value_heads));
}

// Hugging Face's inv_freq: 1 / theta^(2i / head_dim), in fp32.
std::vector<float> RopeInvFreq(int head_dim, double theta) {
  std::vector<float> inv_freq(head_dim / 2);
  for (int i = 0; i < head_dim / 2; ++i) {
    inv_freq[i] = 1.0f / std::pow(static_cast<float>(theta), static_cast<float>(2 * i) / head_dim);
  }
  return inv_freq;
}

// The (outputs, inputs) of a decoder layer's projections: qkv, o_proj, gate/up, down.
std::array<std::pair<int, int>, 4> DecoderProjections(const ModelConfig& c) {
  return {std::pair{c.q_size() + 2 * c.kv_size(), c.hidden_size}, std::pair{c.hidden_size, c.q_size()},
          std::pair{2 * c.intermediate_size, c.hidden_size}, std::pair{c.hidden_size, c.intermediate_size}};
}

// Whether every decoder projection of `c` has the sizes kernels/decode_mma.h needs.
bool DecodeMmaFits(const ModelConfig& c) {
  const auto projections = DecoderProjections(c);
  return c.head_dim % 32 == 0 && std::all_of(projections.begin(), projections.end(), [](const auto& p) {
           return kernels::DecodeMmaSupports(p.first, p.second);
         });
}

// Whether the steps of the fused decode GEMVs gather their embeddings in kernels::StageStepInputs instead of
// a GatherRows kernel; DOZE_INPUTS_GATHER=0 keeps the kernel (measurements).
bool UseInputsGather() {
  static const bool enabled = kernels::EnvFlag("DOZE_INPUTS_GATHER");
  return enabled;
}

}  // namespace

absl::StatusOr<std::unique_ptr<CudaModelRunner>> CudaModelRunner::Create(const Checkpoint& checkpoint,
                                                                         const CudaRunnerOptions& options) {
  return Create(checkpoint.config(), checkpoint.weights(), options);
}

absl::StatusOr<std::unique_ptr<CudaModelRunner>> CudaModelRunner::Create(const ModelConfig& config,
                                                                         const ModelWeights& weights,
                                                                         const CudaRunnerOptions& options) {
  int devices = 0;
  const cudaError_t err = cudaGetDeviceCount(&devices);
  if (err != cudaSuccess || devices == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("no CUDA device: ", err != cudaSuccess ? cudaGetErrorString(err) : "none found"));
  }
  RETURN_IF_ERROR(CheckSupported(config));
  if (options.block_size <= 0 || options.max_num_seqs <= 0 || options.max_num_tokens <= 0 ||
      !(options.gpu_memory_fraction > 0 && options.gpu_memory_fraction <= 1)) {
    return absl::InvalidArgumentError(
        "CudaRunnerOptions: sizes must be positive, the memory fraction in (0, 1]");
  }
  if (options.block_size % kernels::kAttentionBlockSizeMultiple != 0) {
    return absl::InvalidArgumentError(absl::StrCat("CudaRunnerOptions: block_size ", options.block_size,
                                                   " is not a multiple of ",
                                                   kernels::kAttentionBlockSizeMultiple));
  }
  std::unique_ptr<CudaModelRunner> runner(new CudaModelRunner(config, options));
  RETURN_IF_ERROR(runner->Init(weights));
  return runner;
}

CudaModelRunner::CudaModelRunner(const ModelConfig& config, const CudaRunnerOptions& options)
    : config_(config), options_(options), decode_mma_fits_(DecodeMmaFits(config)) {}

CudaModelRunner::~CudaModelRunner() {
  if (stream_ != nullptr) cudaStreamSynchronize(stream_);
  for (auto& [key, exec] : graphs_) cudaGraphExecDestroy(exec);
  if (metadata_copied_ != nullptr) cudaEventDestroy(metadata_copied_);
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
}

absl::Status CudaModelRunner::Init(const ModelWeights& weights) {
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  CUDA_CHECK(cudaEventCreateWithFlags(&metadata_copied_, cudaEventDisableTiming));
  gemm_ = std::make_unique<kernels::GemmContext>();
  ASSIGN_OR_RETURN(weights_, cuda::DeviceWeights::Upload(config_, weights));
  const std::vector<float> inv_freq = RopeInvFreq(config_.head_dim, config_.rope_theta);
  RETURN_IF_ERROR(inv_freq_.Allocate(inv_freq.size() * sizeof(float), "rotary frequencies"));
  CUDA_CHECK(
      cudaMemcpy(inv_freq_.get(), inv_freq.data(), inv_freq.size() * sizeof(float), cudaMemcpyHostToDevice));
  int max_model_len = options_.max_model_len > 0 ? options_.max_model_len : config_.max_position_embeddings;
  if (max_model_len <= 0) max_model_len = 32768;
  max_blocks_per_seq_ = (max_model_len + options_.block_size - 1) / options_.block_size;
  RETURN_IF_ERROR(EnsureCapacity(options_.max_num_tokens, options_.max_num_seqs, options_.max_num_seqs));
  RETURN_IF_ERROR(AllocateKvPool());
  DOZE_LOG(INFO) << "CUDA runner: weights " << weights_->bytes() / (1 << 20) << " MiB, activations "
                 << activations_.bytes() / (1 << 20) << " MiB, KV pool " << num_kv_blocks_ << " blocks of "
                 << options_.block_size << " tokens (" << kv_pool_.bytes() / (1 << 20) << " MiB)";
  return absl::OkStatus();
}

size_t CudaModelRunner::KvBlockBytes() const {
  return static_cast<size_t>(config_.num_hidden_layers) * 2 * options_.block_size * config_.kv_size() *
         sizeof(__nv_bfloat16);
}

absl::Status CudaModelRunner::AllocateKvPool() {
  const size_t block_bytes = KvBlockBytes();
  size_t num_blocks = options_.num_kv_blocks;
  if (num_blocks == 0) {
    size_t free_bytes = 0, total_bytes = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    const double budget =
        options_.gpu_memory_fraction * total_bytes - static_cast<double>(total_bytes - free_bytes);
    num_blocks = budget > 0 ? static_cast<size_t>(budget / block_bytes) : 0;
  }
  if (num_blocks == 0) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "no GPU memory left for the KV cache at gpu_memory_fraction ", options_.gpu_memory_fraction));
  }
  num_kv_blocks_ = static_cast<int>(std::min<size_t>(num_blocks, 1 << 30));
  return kv_pool_.Allocate(num_kv_blocks_ * block_bytes, "KV cache");
}

absl::Status CudaModelRunner::EnsureCapacity(int num_tokens, int num_logits, int num_seqs) {
  if (num_tokens <= capacity_tokens_ && num_logits <= capacity_logits_ && num_seqs <= capacity_seqs_) {
    return absl::OkStatus();
  }
  DestroyGraphs();  // they point into the buffers about to be replaced
  capacity_tokens_ = std::max(capacity_tokens_, num_tokens);
  capacity_logits_ = std::max(capacity_logits_, num_logits);
  capacity_seqs_ = std::max(capacity_seqs_, num_seqs);
  const size_t t = capacity_tokens_, l = capacity_logits_, hidden = config_.hidden_size;
  const size_t qkv = config_.q_size() + 2 * config_.kv_size(), inter = config_.intermediate_size;
  attn_workspace_bytes_ = kernels::PagedAttentionWorkspaceBytes(
      capacity_tokens_, config_.num_attention_heads, config_.num_key_value_heads, config_.head_dim);
  mma_workspace_.bytes = DecodeMmaWorkspaceBytes(capacity_tokens_);
  // Two passes: the first sizes the allocation, the second carves it (activations_.get() changes in between).
  for (int pass = 0; pass < 2; ++pass) {
    cuda::BumpAllocator arena(pass == 0 ? nullptr : activations_.get());
    residual_ = arena.Take<__nv_bfloat16>(t * hidden);
    normed_ = arena.Take<__nv_bfloat16>(t * hidden);
    qkv_ = arena.Take<__nv_bfloat16>(t * qkv);
    attn_ = arena.Take<__nv_bfloat16>(t * config_.q_size());
    proj_ = arena.Take<__nv_bfloat16>(t * hidden);
    gate_up_ = arena.Take<__nv_bfloat16>(t * 2 * inter);
    act_ = arena.Take<__nv_bfloat16>(t * inter);
    logit_rows_ = arena.Take<__nv_bfloat16>(l * hidden);
    logits_ = arena.Take<float>(l * config_.vocab_size);
    attn_workspace_ = arena.Take<float>(attn_workspace_bytes_ / sizeof(float));
    mma_workspace_.data = arena.Take<char>(mma_workspace_.bytes);
    lm_head_workspace_ = arena.Take<char>(std::max(kernels::LmHeadArgmaxWorkspaceBytes(capacity_logits_),
                                                   kernels::LmHeadScreenWorkspaceBytes(config_.vocab_size)));
    rotary_table_ = arena.Take<float2>(t * (config_.head_dim / 2));
    pending_ = arena.Take<int64_t>(hidden);
    if (pass == 0) RETURN_IF_ERROR(activations_.Allocate(arena.used(), "activations"));
  }
  CUDA_CHECK(cudaMemsetAsync(pending_, 0, hidden * sizeof(int64_t), stream_));
  const size_t metadata_ints = 6 * t + l + static_cast<size_t>(capacity_seqs_) * max_blocks_per_seq_;
  RETURN_IF_ERROR(metadata_.Allocate(metadata_ints * sizeof(int32_t), "step metadata"));
  // The pinned buffers outlive a Sleep (activations freed, capacities reset), so Wake need not pin again.
  if (host_metadata_.bytes() < metadata_ints * sizeof(int32_t)) {
    RETURN_IF_ERROR(host_metadata_.Allocate(metadata_ints * sizeof(int32_t), "step metadata staging"));
  }
  if (host_logits_.bytes() < l * config_.vocab_size * sizeof(float)) {
    RETURN_IF_ERROR(host_logits_.Allocate(l * config_.vocab_size * sizeof(float), "host logits"));
  }
  return absl::OkStatus();
}

size_t CudaModelRunner::DecodeMmaWorkspaceBytes(int num_tokens) const {
  if (!decode_mma_fits_) return 0;  // the tensor-core kernels never run
  size_t bytes = 0;
  for (int m = 1; m <= std::min({num_tokens, options_.decode_mma_max_rows, kernels::kDecodeMmaMaxRows});
       ++m) {
    for (const auto& [n, k] : DecoderProjections(config_))
      bytes = std::max(bytes, kernels::DecodeMmaWorkspaceBytes(m, n, k));
  }
  return bytes;
}

void CudaModelRunner::DestroyGraphs() {
  if (stream_ != nullptr) CUDA_CHECK(cudaStreamSynchronize(stream_));
  for (auto& [key, exec] : graphs_) CUDA_CHECK(cudaGraphExecDestroy(exec));
  graphs_.clear();
}

absl::Status CudaModelRunner::Sleep() {
  if (asleep_) return absl::OkStatus();
  const auto start = std::chrono::steady_clock::now();
  DestroyGraphs();  // they point into the buffers about to move
  sampler_.reset();
  previous_sampled_rows_ = 0;
  const size_t kv_bytes = kv_pool_.bytes(), activation_bytes = activations_.bytes() + metadata_.bytes();
  RETURN_IF_ERROR(weights_->Offload(stream_));
  kv_pool_ = cuda::DeviceBuffer();
  activations_ = cuda::DeviceBuffer();
  metadata_ = cuda::DeviceBuffer();
  capacity_tokens_ = capacity_logits_ = capacity_seqs_ = 0;
  asleep_ = true;
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  DOZE_LOG(INFO) << "CUDA runner asleep: freed weights " << weights_->bytes() / (1 << 20) << " MiB (now in "
                 << "host memory), KV pool " << kv_bytes / (1 << 20) << " MiB, activations "
                 << activation_bytes / (1 << 20) << " MiB in " << ms << " ms";
  return absl::OkStatus();
}

absl::Status CudaModelRunner::Wake() {
  if (!asleep_) return absl::OkStatus();
  const auto start = std::chrono::steady_clock::now();
  RETURN_IF_ERROR(weights_->Restore(stream_));
  if (kv_pool_.get() == nullptr) {
    RETURN_IF_ERROR(kv_pool_.Allocate(static_cast<size_t>(num_kv_blocks_) * KvBlockBytes(), "KV cache"));
  }
  RETURN_IF_ERROR(EnsureCapacity(options_.max_num_tokens, options_.max_num_seqs, options_.max_num_seqs));
  asleep_ = false;
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  DOZE_LOG(INFO) << "CUDA runner awake: restored weights " << weights_->bytes() / (1 << 20)
                 << " MiB, KV pool " << num_kv_blocks_ << " blocks (" << kv_pool_.bytes() / (1 << 20)
                 << " MiB), activations " << activations_.bytes() / (1 << 20) << " MiB in " << ms << " ms";
  return absl::OkStatus();
}

CudaModelRunner::StepPlan CudaModelRunner::PlanStep(const BatchMetadata& batch) const {
  StepPlan plan{batch.num_tokens(),
                batch.num_logits(),
                batch.num_seqs(),
                0,
                0,
                false,
                batch.num_tokens() == batch.num_seqs()};
  const int max_seq_len = *std::max_element(batch.seq_lens.begin(), batch.seq_lens.end());
  const int max_model_len = max_blocks_per_seq_ * options_.block_size;
  plan.max_context = std::min(std::max(kMinContextBucket, NextPowerOfTwo(max_seq_len)), max_model_len);
  plan.table_width = (plan.max_context + options_.block_size - 1) / options_.block_size;
  bool decode = plan.one_token_per_seq && plan.num_logits == plan.num_seqs;
  for (int i = 0; decode && i < plan.num_logits; ++i) decode = batch.logits_indices[i] == i;
  plan.graph = options_.use_cuda_graphs && decode && BatchBucket(plan.num_seqs) <= options_.max_num_seqs;
  if (plan.graph) plan.num_tokens = plan.num_logits = BatchBucket(plan.num_seqs);
  plan.inputs_gather = UseDecodeGemv(plan.num_tokens) && UseInputsGather();
  return plan;
}

CudaModelRunner::StepMetadata CudaModelRunner::MetadataViews(const StepPlan& plan, int32_t* base) const {
  const int t = plan.num_tokens;
  int32_t* block_tables = base + 5 * t + plan.num_logits;
  return StepMetadata{base,         base + t,
                      base + 2 * t, base + 3 * t,
                      base + 4 * t, base + 5 * t,
                      block_tables, block_tables + static_cast<size_t>(plan.num_seqs) * plan.table_width};
}

void CudaModelRunner::UploadMetadata(const BatchMetadata& batch, const StepPlan& plan) {
  CUDA_CHECK(cudaEventSynchronize(metadata_copied_));  // the staging buffer's last copy has left
  int32_t* host = static_cast<int32_t*>(host_metadata_.get());
  const StepMetadata m = MetadataViews(plan, host);
  const int real_tokens = batch.num_tokens();
  std::copy(batch.token_ids.begin(), batch.token_ids.end(), m.token_ids);
  std::copy(batch.positions.begin(), batch.positions.end(), m.positions);
  std::copy(batch.slot_mapping.begin(), batch.slot_mapping.end(), m.slot_mapping);
  std::copy(batch.logits_indices.begin(), batch.logits_indices.end(), m.logits_indices);
  for (int s = 0; s < plan.num_seqs; ++s) {
    const int begin = batch.query_start_loc[s], end = batch.query_start_loc[s + 1];
    for (int row = begin; row < end; ++row) {
      m.token_seq[row] = s;
      m.context_lens[row] = batch.seq_lens[s] - (end - row) + 1;
    }
    const int copied = std::min(plan.table_width, batch.max_blocks_per_seq);
    int32_t* table = m.block_tables + static_cast<size_t>(s) * plan.table_width;
    std::copy(batch.block_table(s), batch.block_table(s) + copied, table);
    std::fill(table + copied, table + plan.table_width, 0);
  }
  for (int row = real_tokens; row < plan.num_tokens;
       ++row) {  // graph padding: attends nothing, writes nothing
    m.token_ids[row] = m.positions[row] = m.token_seq[row] = m.context_lens[row] = 0;
    m.slot_mapping[row] = -1;
  }
  for (int row = batch.num_logits(); row < plan.num_logits; ++row) m.logits_indices[row] = row;
  size_t ints = 5 * static_cast<size_t>(plan.num_tokens) + plan.num_logits +
                static_cast<size_t>(plan.num_seqs) * plan.table_width;
  if (!batch.token_sources.empty()) {
    std::copy(batch.token_sources.begin(), batch.token_sources.end(), m.token_sources);
    std::fill(m.token_sources + real_tokens, m.token_sources + plan.num_tokens, -1);
    ints += plan.num_tokens;
  }
  // One kernel reads the inputs over the bus, takes the pending tokens of rows with a source and writes the
  // previous sampling's tokens to the sampler's pinned memory. The step's first kernel after it (GatherRows,
  // launched without programmatic dependent launch, or StepPrologue, which reads nothing before its grid
  // dependency wait) reads the metadata only once it has finished; the kernels after that one start early
  // only once that one has passed its wait.
  const int sources_offset = batch.token_sources.empty() ? -1 : static_cast<int>(m.token_sources - host);
  const CudaSampler::Unpublished unpublished =
      sampler_ != nullptr ? sampler_->UnpublishedTokens() : CudaSampler::Unpublished{};
  kernels::StageStepInputs(
      host, static_cast<int32_t*>(metadata_.get()), static_cast<int>(ints), plan.num_tokens, sources_offset,
      sampler_ != nullptr ? sampler_->last_tokens() : nullptr, unpublished.host, unpublished.rows, stream_,
      plan.inputs_gather ? kernels::EmbeddingGather{weights_->embed_tokens(), residual_, config_.hidden_size}
                         : kernels::EmbeddingGather{});
  if (unpublished.host != nullptr) sampler_->TokensPublished();
  CUDA_CHECK(cudaEventRecord(metadata_copied_, stream_));
}

absl::StatusOr<const float*> CudaModelRunner::ForwardOnDevice(const BatchMetadata& batch) {
  RETURN_IF_ERROR(RunStep(batch, /*greedy=*/false).status());
  return logits_;
}

absl::StatusOr<bool> CudaModelRunner::RunStep(const BatchMetadata& batch, bool greedy) {
  if (asleep_) return absl::FailedPreconditionError("the CUDA runner is asleep; call Wake first");
  RETURN_IF_ERROR(ValidateBatch(
      batch, BatchLimits{config_.vocab_size, num_kv_blocks_, options_.block_size, previous_sampled_rows_}));
  if (batch.num_tokens() == 0) return false;
  for (int len : batch.seq_lens) {
    if (len > max_blocks_per_seq_ * options_.block_size) {
      return absl::InvalidArgumentError(absl::StrCat("sequence of ", len, " tokens exceeds max_model_len ",
                                                     max_blocks_per_seq_ * options_.block_size));
    }
  }
  StepPlan plan = PlanStep(batch);
  RETURN_IF_ERROR(EnsureCapacity(plan.num_tokens, plan.num_logits, plan.num_seqs));
  if (greedy && options_.greedy_lm_head && sampler_ != nullptr &&
      kernels::LmHeadArgmaxPreferred(plan.num_logits, config_.vocab_size, config_.hidden_size)) {
    plan.chosen_tokens = sampler_->ChosenTokens(plan.num_logits);  // nullptr beyond its reserve: logits
    if (plan.chosen_tokens != nullptr && plan.chosen_tokens != graph_chosen_tokens_) {
      if (graph_chosen_tokens_ != nullptr) DestroyGraphs();  // greedy graphs write the old buffer
      graph_chosen_tokens_ = plan.chosen_tokens;
    }
  }
  UploadMetadata(batch, plan);
  if (plan.graph) {
    RunDecodeGraph(plan);
  } else {
    EnqueueModel(plan);
  }
  return plan.chosen_tokens != nullptr;
}

absl::StatusOr<LogitsView> CudaModelRunner::Forward(const BatchMetadata& batch) {
  ASSIGN_OR_RETURN(const float* device_logits, ForwardOnDevice(batch));
  previous_sampled_rows_ = 0;  // nothing sampled on the device for the next step to read
  const size_t bytes = static_cast<size_t>(batch.num_logits()) * config_.vocab_size * sizeof(float);
  CUDA_CHECK(cudaMemcpyAsync(host_logits_.get(), device_logits, bytes, cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  return LogitsView{static_cast<const float*>(host_logits_.get()), batch.num_logits(), config_.vocab_size};
}

absl::StatusOr<std::vector<int32_t>> CudaModelRunner::ForwardAndSample(
    const BatchMetadata& batch, absl::Span<const DeviceSamplingRow> rows) {
  RETURN_IF_ERROR(SubmitForwardAndSample(batch, rows));
  return CollectSamples();
}

absl::Status CudaModelRunner::SubmitForwardAndSample(const BatchMetadata& batch,
                                                     absl::Span<const DeviceSamplingRow> rows) {
  if (static_cast<int>(rows.size()) != batch.num_logits()) {
    return absl::InvalidArgumentError(
        absl::StrCat(rows.size(), " sampling rows for ", batch.num_logits(), " logits rows"));
  }
  if (sampler_ == nullptr) {
    sampler_ = std::make_unique<CudaSampler>(stream_);
    RETURN_IF_ERROR(sampler_->Reserve(options_.max_num_seqs));  // every decode graph's rows
  }
  const bool greedy = std::all_of(rows.begin(), rows.end(), [](const DeviceSamplingRow& row) {
    return row.temperature <= 0.f && row.edits.empty();
  });
  ASSIGN_OR_RETURN(const bool chosen, RunStep(batch, greedy));
  if (chosen) {
    ++lm_head_chosen_steps_;
    RETURN_IF_ERROR(sampler_->EnqueueChosen(batch.num_logits()));
  } else {
    RETURN_IF_ERROR(sampler_->Enqueue(logits_, rows, config_.vocab_size));  // may edit the logits in place
  }
  previous_sampled_rows_ = batch.num_logits();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> CudaModelRunner::CollectSamples() {
  if (sampler_ == nullptr) return absl::FailedPreconditionError("no step submitted");
  return sampler_->Wait();
}

// The first step of a bucket runs eagerly (loading every kernel it needs) and is then captured without
// running; later steps of the bucket replay the graph.
void CudaModelRunner::RunDecodeGraph(const StepPlan& plan) {
  const std::tuple<int, int, bool> key{plan.num_tokens, plan.max_context, plan.chosen_tokens != nullptr};
  auto it = graphs_.find(key);
  if (it != graphs_.end()) {
    CUDA_CHECK(cudaGraphLaunch(it->second, stream_));
    return;
  }
  EnqueueModel(plan);
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  EnqueueModel(plan);
  CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
  CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  CUDA_CHECK(cudaGraphDestroy(graph));
  graphs_.emplace(key, exec);
  DOZE_LOG(DEBUG) << "captured decode graph for " << plan.num_tokens << " rows, context " << plan.max_context;
}

}  // namespace doze
