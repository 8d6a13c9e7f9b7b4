// doze_kernel_bench: the GPU kernels at the shapes of Qwen2.5-0.5B, and whole decode steps of
// CudaModelRunner. Prints one JSON line and a table: microseconds per call, achieved GB/s against the 3.0
// TB/s measured ceiling (bytes each op must move: weights once, activations in and out, the KV it reads),
// tokens/s for whole steps.
//
// usage: doze_kernel_bench [--no-model | --steps [MAX_BATCH [MIN_BATCH]] | --split-k | --lm-head |
//                          --sampling | --attention B C BUCKET [KV] | --layer ROWS | --pair ROWS |
//                          --timeline ROWS [greedy]]
// --no-model skips the decode steps of the full model, --steps runs only them (up to MAX_BATCH, from
// MIN_BATCH: the default paths alone), --split-k times cuBLASLt's k splits for the projections, --lm-head the
// greedy LM head's two ways, --pair two half batches on two streams against one whole (decode_step_bench.h),
// --timeline each kernel's and copy's share of a decode step from CUPTI's records (printed as JSON and a
// table of its own; with `greedy`, the engine's steps at temperature 0). Weights and KV caches rotate over
// enough copies to exceed the 50 MB L2, so each figure is a memory figure.
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench/decode_step_bench.h"
#include "bench/kernel_bench_util.h"
#include "kernels/activation.h"
#include "kernels/decode_gemv.h"
#include "kernels/decode_mma.h"
#include "kernels/gemm.h"
#include "kernels/gemv.h"
#include "kernels/lm_head_argmax.h"
#include "kernels/lm_head_screen.h"
#include "kernels/paged_attention.h"
#include "kernels/rms_norm.h"
#include "kernels/rotary_kv_cache.h"
#include "kernels/sampling.h"

namespace doze::bench {
namespace {

using bf16 = __nv_bfloat16;
constexpr size_t kRotateBytes = 256u << 20;

// `copies` device copies of `count` random bf16 values in [-scale, scale].
std::vector<bf16*> RandomCopies(size_t count, int copies, float scale) {
  std::mt19937 rng(count);
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<bf16> host(count);
  for (bf16& x : host) x = __float2bfloat16(dist(rng));
  std::vector<bf16*> out(copies);
  for (bf16*& p : out) {
    CUDA_CHECK(cudaMalloc(&p, count * sizeof(bf16)));
    CUDA_CHECK(cudaMemcpy(p, host.data(), count * sizeof(bf16), cudaMemcpyHostToDevice));
  }
  return out;
}

void FreeAll(const std::vector<bf16*>& ptrs) {
  for (bf16* p : ptrs) CUDA_CHECK(cudaFree(p));
}

int CopiesFor(size_t bytes) { return static_cast<int>(std::clamp<size_t>(kRotateBytes / bytes + 1, 1, 64)); }

struct LinearShape {
  const char* name;
  int n, k;
  bool bias;
  kernels::OutType out_type;
};

// A decoder layer's projections of Qwen2.5-0.5B, then its LM head.
constexpr LinearShape kProjections[] = {{"qkv 1152x896+bias", 1152, 896, true, kernels::OutType::kBf16},
                                        {"o_proj 896x896", 896, 896, false, kernels::OutType::kBf16},
                                        {"gate_up 9728x896", 9728, 896, false, kernels::OutType::kBf16},
                                        {"down 896x4864", 896, 4864, false, kernels::OutType::kBf16}};
constexpr LinearShape kLmHead = {"lm_head 151936x896 f32", 151936, 896, false, kernels::OutType::kF32};

// Random operands of one linear shape for up to 64 rows, the weights in enough copies to stream from HBM.
class LinearOperands {
 public:
  static constexpr int kMaxRows = 64;
  explicit LinearOperands(const LinearShape& s)
      : s_(s),
        weights_(RandomCopies(static_cast<size_t>(s.n) * s.k, CopiesFor(static_cast<size_t>(s.n) * s.k * 2),
                              0.03f)),
        x_(RandomCopies(static_cast<size_t>(kMaxRows) * s.k, 1, 1.f)),
        bias_(RandomCopies(s.n, 1, 0.1f)) {
    CUDA_CHECK(cudaMalloc(&y_, static_cast<size_t>(kMaxRows) * s.n * sizeof(float)));
  }
  ~LinearOperands() {
    FreeAll(weights_);
    FreeAll(x_);
    FreeAll(bias_);
    for (const std::vector<void*>& screens : screens_)
      for (void* screen : screens) cudaFree(screen);
    cudaFree(y_);
  }
  LinearOperands(const LinearOperands&) = delete;
  LinearOperands& operator=(const LinearOperands&) = delete;

  // Bytes a call of m rows must move: the weights once, x in, y out.
  double Bytes(int m) const {
    const double out_size = s_.out_type == kernels::OutType::kF32 ? 4 : 2;
    return static_cast<double>(s_.n) * s_.k * 2 + static_cast<double>(m) * s_.k * 2 + m * s_.n * out_size;
  }
  // Microseconds a call of cuBLASLt's current plan for m rows takes (graph replays over the weight copies).
  double TimeCublasLt(kernels::GemmContext& gemm, int m, cudaStream_t stream) const {
    return Time(stream, [&](const bf16* w) {
      gemm.Linear(x_[0], w, bias(), y_, s_.out_type, m, s_.n, s_.k, stream);
    });
  }
  double TimeGemv(int m, cudaStream_t stream) const {
    return Time(stream, [&](const bf16* w) {
      kernels::Gemv(x_[0], w, bias(), y_, s_.out_type, m, s_.n, s_.k, stream);
    });
  }
  // The greedy tokens of m rows as the runner chose them before kernels::LmHeadArgmax: fp32 logits (the GEMV
  // at one or two rows, else cuBLASLt), then the sampler's argmax; and through LmHeadArgmax.
  double TimeLogitsThenArgmax(kernels::GemmContext& gemm, int m, void* workspace, int32_t* tokens,
                              cudaStream_t stream) const {
    return Time(stream, [&](const bf16* w) {
      if (m <= 2) {
        kernels::Gemv(x_[0], w, nullptr, y_, kernels::OutType::kF32, m, s_.n, s_.k, stream);
      } else {
        gemm.Linear(x_[0], w, nullptr, y_, kernels::OutType::kF32, m, s_.n, s_.k, stream);
      }
      kernels::ArgmaxRows(static_cast<const float*>(y_), tokens, workspace, m, s_.n, stream);
    });
  }
  double TimeLmHeadArgmax(int m, void* workspace, int32_t* tokens, cudaStream_t stream) const {
    return Time(stream, [&](const bf16* w) {
      kernels::LmHeadArgmax(x_[0], w, tokens, m, s_.n, s_.k, workspace, stream);
    });
  }
  // Through kernels::LmHeadScreenedArgmax's copy of `bits`, every weight copy with its own screen (built on
  // the first call).
  double TimeLmHeadScreened(int m, int bits, void* workspace, int32_t* tokens, cudaStream_t stream) {
    std::vector<void*>& screens = screens_[bits == 4];
    for (size_t i = screens.size(); i < weights_.size(); ++i) {
      void* screen;
      CUDA_CHECK(cudaMalloc(&screen, kernels::LmHeadScreenBytes(s_.n, s_.k, bits)));
      kernels::BuildLmHeadScreen(weights_[i], screen, s_.n, s_.k, bits, stream);
      screens.push_back(screen);
    }
    return Time(stream, [&](const bf16* w) {
      const size_t copy = std::find(weights_.begin(), weights_.end(), w) - weights_.begin();
      kernels::LmHeadScreenedArgmax(x_[0], w, screens[copy], bits, tokens, m, s_.n, s_.k, workspace, stream);
    });
  }

 private:
  const bf16* bias() const { return s_.bias ? bias_[0] : nullptr; }
  template <typename Call>
  double Time(cudaStream_t stream, const Call& call) const {
    const int copies = static_cast<int>(weights_.size());
    return TimeInGraph(
        stream, [&](int i) { call(weights_[i % copies]); }, std::max(copies, 20));
  }

  const LinearShape& s_;
  std::vector<bf16*> weights_, x_, bias_;
  // The int8 copies' screens, then the int4 ones: [weights_.size()] each, where timed.
  std::vector<void*> screens_[2];
  void* y_ = nullptr;
};

// cuBLASLt's next algorithms for the shape, timed like its first choice (weights streamed from HBM): the best
// of ranks 1 to 15, then the first choice restored.
void BenchAlgorithms(const LinearShape& s, int m, const LinearOperands& operands, cudaStream_t stream,
                     kernels::GemmContext& gemm, std::vector<Result>& out) {
  double best = 0;
  int best_rank = 0;
  for (int rank = 1; rank < 16 && gemm.UseAlgorithm(m, s.n, s.k, s.bias, s.out_type, rank); ++rank) {
    const double us = operands.TimeCublasLt(gemm, m, stream);
    if (best_rank == 0 || us < best) best = us, best_rank = rank;
  }
  gemm.UseAlgorithm(m, s.n, s.k, s.bias, s.out_type, 0);
  if (best_rank > 0) {
    out.push_back({"gemm",
                   std::string(s.name) + " m=" + std::to_string(m) + " cublasLt best of ranks 1-15 (rank " +
                       std::to_string(best_rank) + ")",
                   best, operands.Bytes(m), 0});
  }
}

// cuBLASLt's first algorithms with k split 2 to 8 ways, at m rows: the fastest configuration against the
// default.
void BenchSplitK(const LinearShape& s, int m, cudaStream_t stream, kernels::GemmContext& gemm,
                 std::vector<Result>& out) {
  const LinearOperands operands(s);
  const std::string shape = std::string(s.name) + " m=" + std::to_string(m);
  out.push_back({"splitk", shape + " default", operands.TimeCublasLt(gemm, m, stream), operands.Bytes(m), 0});
  double best = 0;
  std::string best_name;
  int tried = 0;
  for (int rank = 0; rank < 8; ++rank) {
    for (int splits : {1, 2, 3, 4, 6, 8}) {
      if (!gemm.UseSplitK(m, s.n, s.k, s.bias, s.out_type, rank, splits)) continue;
      ++tried;
      const double us = operands.TimeCublasLt(gemm, m, stream);
      if (best_name.empty() || us < best)
        best = us, best_name = "rank " + std::to_string(rank) + " split " + std::to_string(splits);
    }
  }
  gemm.UseAlgorithm(m, s.n, s.k, s.bias, s.out_type, 0);
  if (!best_name.empty()) {
    out.push_back({"splitk", shape + " best of " + std::to_string(tried) + ": " + best_name, best,
                   operands.Bytes(m), 0});
  }
}

void BenchLinear(const LinearShape& s, cudaStream_t stream, kernels::GemmContext& gemm,
                 std::vector<Result>& out) {
  const LinearOperands operands(s);
  for (int m : {1, 8, LinearOperands::kMaxRows}) {
    const std::string shape = std::string(s.name) + " m=" + std::to_string(m);
    out.push_back(
        {"gemm", shape + " cublasLt", operands.TimeCublasLt(gemm, m, stream), operands.Bytes(m), 0});
    if (m == LinearOperands::kMaxRows) BenchAlgorithms(s, m, operands, stream, gemm, out);
    if (m > kernels::kGemvMaxRows) continue;
    out.push_back({"gemm", shape + " gemv", operands.TimeGemv(m, stream), operands.Bytes(m), 0});
  }
}

// Buffers of one decoder layer's activations at `m` rows of Qwen2.5-0.5B's shape, random, for timing the
// fused decode GEMVs and the element-wise ops.
struct LayerActivations {
  static constexpr int kHidden = 896, kInter = 4864, kQkv = 1152, kQ = 896, kSlots = 64 * 16;
  explicit LayerActivations(int m)
      : residual(RandomCopies(static_cast<size_t>(m) * kHidden, 1, 1.f)[0]),
        norm(RandomCopies(kHidden, 1, 1.f)[0]),
        bias(RandomCopies(kQkv, 1, 0.1f)[0]),
        qkv(RandomCopies(static_cast<size_t>(m) * kQkv, 1, 1.f)[0]),
        attn(RandomCopies(static_cast<size_t>(m) * kQ, 1, 1.f)[0]),
        gate_up(RandomCopies(static_cast<size_t>(m) * 2 * kInter, 1, 1.f)[0]),
        act(RandomCopies(static_cast<size_t>(m) * kInter, 1, 1.f)[0]),
        k_cache(RandomCopies(static_cast<size_t>(kSlots) * 128, 1, 1.f)[0]),
        v_cache(RandomCopies(static_cast<size_t>(kSlots) * 128, 1, 1.f)[0]) {
    std::vector<int32_t> ints(m);
    for (int i = 0; i < m; ++i) ints[i] = 500 + 7 * i;
    CUDA_CHECK(cudaMalloc(&positions, m * 4));
    CUDA_CHECK(cudaMalloc(&slots, m * 4));
    CUDA_CHECK(cudaMemcpy(positions, ints.data(), m * 4, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(slots, ints.data(), m * 4, cudaMemcpyHostToDevice));
    std::vector<float> freq(32);
    for (int i = 0; i < 32; ++i) freq[i] = std::pow(1e6f, -i / 32.f);
    CUDA_CHECK(cudaMalloc(&inv_freq, freq.size() * 4));
    CUDA_CHECK(cudaMemcpy(inv_freq, freq.data(), freq.size() * 4, cudaMemcpyHostToDevice));
  }
  ~LayerActivations() {
    FreeAll({residual, norm, bias, qkv, attn, gate_up, act, k_cache, v_cache});
    for (void* p : {static_cast<void*>(positions), static_cast<void*>(slots), static_cast<void*>(inv_freq)})
      CUDA_CHECK(cudaFree(p));
  }
  bf16 *residual, *norm, *bias, *qkv, *attn, *gate_up, *act, *k_cache, *v_cache;
  int32_t *positions, *slots;
  float* inv_freq;
};

// Rotating copies of one decoder layer's four projection weights at Qwen2.5-0.5B's shapes, so that the timed
// calls stream them from HBM.
struct LayerWeights {
  using A = LayerActivations;
  static constexpr size_t kQkv = A::kQkv * A::kHidden, kO = A::kHidden * A::kQ,
                          kGateUp = 2 * A::kInter * A::kHidden, kDown = A::kHidden * A::kInter,
                          kLayer = kQkv + kO + kGateUp + kDown;
  LayerWeights() : copies(CopiesFor(kLayer * sizeof(bf16))), weights(RandomCopies(kLayer, copies, 0.03f)) {}
  ~LayerWeights() { FreeAll(weights); }
  const bf16* qkv(int i) const { return weights[i % copies]; }
  const bf16* o(int i) const { return weights[i % copies] + kQkv; }
  const bf16* gate_up(int i) const { return weights[i % copies] + kQkv + kO; }
  const bf16* down(int i) const { return weights[i % copies] + kQkv + kO + kGateUp; }
  int calls() const { return std::max(copies, 20); }

  const int copies;
  const std::vector<bf16*> weights;
};

// The four fused decode GEMVs of a layer (kernels/decode_gemv.h) at `m` rows, over rotating weight copies;
// bytes are the weights plus the activations read and written.
void BenchDecodeGemv(int m, cudaStream_t stream, std::vector<Result>& out) {
  using A = LayerActivations;
  LayerActivations a(m);
  const LayerWeights w;
  const int calls = w.calls();
  const kernels::RotaryShape rotary{m, 14, 2, 64, 16};
  const kernels::RotaryCacheOutput qkv_out{a.qkv, a.positions, a.slots, a.inv_freq, a.k_cache, a.v_cache};
  const std::string rows = " m=" + std::to_string(m) + " fused";
  const double act_bytes = 2.0 * m;
  out.push_back({"fused", "norm+qkv+rotary+kv" + rows,
                 TimeInGraph(
                     stream,
                     [&](int i) {
                       kernels::NormQkvRotaryGemv({a.residual, a.norm, 1e-6f}, w.qkv(i), a.bias, qkv_out,
                                                  rotary, A::kHidden, stream);
                     },
                     calls),
                 LayerWeights::kQkv * 2.0 + act_bytes * (A::kHidden + A::kQkv), 0});
  out.push_back(
      {"fused", "o_proj+residual" + rows,
       TimeInGraph(
           stream,
           [&](int i) { kernels::ResidualGemv(a.attn, w.o(i), a.residual, m, A::kHidden, A::kQ, stream); },
           calls),
       LayerWeights::kO * 2.0 + act_bytes * (A::kQ + 2 * A::kHidden), 0});
  out.push_back({"fused", "norm+gate_up+swiglu" + rows,
                 TimeInGraph(
                     stream,
                     [&](int i) {
                       kernels::NormSwiGluGemv({a.residual, a.norm, 1e-6f}, w.gate_up(i), a.act, m, A::kInter,
                                               A::kHidden, stream);
                     },
                     calls),
                 LayerWeights::kGateUp * 2.0 + act_bytes * (A::kHidden + A::kInter), 0});
  out.push_back({"fused", "down+residual" + rows,
                 TimeInGraph(
                     stream,
                     [&](int i) {
                       kernels::ResidualGemv(a.act, w.down(i), a.residual, m, A::kHidden, A::kInter, stream);
                     },
                     calls),
                 LayerWeights::kDown * 2.0 + act_bytes * (A::kInter + 2 * A::kHidden), 0});
}

// The tensor-core decode kernels of a layer (kernels/decode_mma.h) at `m` rows, over rotating weight copies;
// the norms are separate kernels on this path (BenchElementwise). Bytes are the weights plus the activations
// read and written.
void BenchDecodeMma(int m, cudaStream_t stream, std::vector<Result>& out) {
  using A = LayerActivations;
  LayerActivations a(m);
  const LayerWeights w;
  size_t workspace_bytes = 0;
  for (const auto& [n, k] : {std::pair{A::kQkv, A::kHidden}, std::pair{A::kHidden, A::kQ},
                             std::pair{2 * A::kInter, A::kHidden}, std::pair{A::kHidden, A::kInter}}) {
    workspace_bytes = std::max(workspace_bytes, kernels::DecodeMmaWorkspaceBytes(m, n, k));
  }
  kernels::DecodeMmaWorkspace ws{nullptr, workspace_bytes};
  CUDA_CHECK(cudaMalloc(&ws.data, std::max<size_t>(ws.bytes, 1)));
  const kernels::RotaryShape rotary{m, 14, 2, 64, 16};
  const kernels::RotaryCacheOutput qkv_out{a.qkv, a.positions, a.slots, a.inv_freq, a.k_cache, a.v_cache};
  const std::string rows = " m=" + std::to_string(m) + " mma";
  const double act_bytes = 2.0 * m;
  const auto add = [&](const std::string& name, auto&& call, double bytes) {
    out.push_back({"mma", name + rows, TimeInGraph(stream, call, w.calls()), bytes, 0});
  };
  add(
      "qkv+rotary+kv",
      [&](int i) {
        kernels::DecodeMmaQkvRotary(a.residual, w.qkv(i), a.bias, qkv_out, rotary, A::kHidden, ws, stream);
      },
      LayerWeights::kQkv * 2.0 + act_bytes * (A::kHidden + A::kQkv));
  add(
      "o_proj",
      [&](int i) { kernels::DecodeMmaStore(a.attn, w.o(i), a.qkv, m, A::kHidden, A::kQ, ws, stream); },
      LayerWeights::kO * 2.0 + act_bytes * (A::kQ + A::kHidden));
  add(
      "gate_up+swiglu",
      [&](int i) {
        kernels::DecodeMmaSwiGlu(a.residual, w.gate_up(i), a.act, m, A::kInter, A::kHidden, ws, stream);
      },
      LayerWeights::kGateUp * 2.0 + act_bytes * (A::kHidden + A::kInter));
  add(
      "down",
      [&](int i) { kernels::DecodeMmaStore(a.act, w.down(i), a.attn, m, A::kHidden, A::kInter, ws, stream); },
      LayerWeights::kDown * 2.0 + act_bytes * (A::kInter + A::kHidden));
  CUDA_CHECK(cudaStreamSynchronize(stream));
  CUDA_CHECK(cudaFree(ws.data));
}

// The unfused path's element-wise kernels at `m` rows: what a cuBLASLt decode step spends besides the
// matmuls and the attention.
void BenchElementwise(int m, cudaStream_t stream, std::vector<Result>& out) {
  using A = LayerActivations;
  LayerActivations a(m);
  const std::string rows = " m=" + std::to_string(m);
  const double act = 2.0 * m;
  out.push_back(
      {"eltwise", "add+rmsnorm" + rows,
       TimeInGraph(
           stream,
           [&](int) { kernels::AddRmsNorm(a.residual, a.attn, a.norm, a.act, m, A::kHidden, 1e-6f, stream); },
           20),
       act * A::kHidden * 4, 0});
  out.push_back({"eltwise", "silu*mul" + rows,
                 TimeInGraph(
                     stream, [&](int) { kernels::SiluMul(a.gate_up, a.act, m, A::kInter, stream); }, 20),
                 act * A::kInter * 3, 0});
  const kernels::RotaryShape rotary{m, 14, 2, 64, 16};
  out.push_back({"eltwise", "rotary+kv write" + rows,
                 TimeInGraph(
                     stream,
                     [&](int) {
                       kernels::RotaryAndCacheWrite(a.qkv, a.positions, a.slots, a.inv_freq, a.k_cache,
                                                    a.v_cache, rotary, stream);
                     },
                     20),
                 act * (2 * A::kQkv + 256), 0});
}

// Decode attention of one layer: `batch` sequences of `context` tokens, Qwen2.5-0.5B's 14/2 heads of 64
// (`kv_heads` other than 2: seven query heads each). `bucket`: the context bucket a decode graph is captured
// for (the split plan's max_context), 0: `context`.
void BenchAttention(int batch, int context, cudaStream_t stream, std::vector<Result>& out, int bucket = 0,
                    int kv_heads = 2) {
  constexpr int kBlock = 16, kDim = 64;
  const int q_heads = 7 * kv_heads;
  const int blocks_per_seq = (context + kBlock - 1) / kBlock, num_blocks = batch * blocks_per_seq;
  const size_t cache_elems = static_cast<size_t>(num_blocks) * kBlock * kv_heads * kDim;
  const int copies = CopiesFor(2 * cache_elems * sizeof(bf16));
  const std::vector<bf16*> k = RandomCopies(cache_elems, copies, 1.f),
                           v = RandomCopies(cache_elems, copies, 1.f);
  const int q_stride = (q_heads + 2 * kv_heads) * kDim;
  const std::vector<bf16*> q = RandomCopies(static_cast<size_t>(batch) * q_stride, 1, 1.f);
  const std::vector<bf16*> o = RandomCopies(static_cast<size_t>(batch) * q_heads * kDim, 1, 1.f);
  std::vector<int32_t> tables(num_blocks), token_seq(batch), ctx(batch, context);
  for (int i = 0; i < num_blocks; ++i) tables[i] = (i * 7919) % num_blocks;  // scattered blocks
  for (int s = 0; s < batch; ++s) token_seq[s] = s;
  int32_t *d_tables, *d_seq, *d_ctx;
  CUDA_CHECK(cudaMalloc(&d_tables, tables.size() * 4));
  CUDA_CHECK(cudaMalloc(&d_seq, batch * 4));
  CUDA_CHECK(cudaMalloc(&d_ctx, batch * 4));
  CUDA_CHECK(cudaMemcpy(d_tables, tables.data(), tables.size() * 4, cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(d_seq, token_seq.data(), batch * 4, cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(d_ctx, ctx.data(), batch * 4, cudaMemcpyHostToDevice));
  const size_t ws_bytes = kernels::PagedAttentionWorkspaceBytes(batch, q_heads, kv_heads, kDim);
  float* ws;
  CUDA_CHECK(cudaMalloc(&ws, ws_bytes));
  kernels::AttentionShape shape{
      batch,    q_heads, kv_heads, kDim, kBlock, blocks_per_seq, bucket > 0 ? bucket : context,
      q_stride, 0.125f};
  shape.one_token_per_seq = true;  // decode rows, as the runner launches them
  const double us = TimeInGraph(
      stream,
      [&](int i) {
        kernels::PagedAttention(q[0], k[i % copies], v[i % copies], d_tables, d_seq, d_ctx, o[0], ws,
                                ws_bytes, shape, stream);
      },
      std::max(copies, 20));
  const double bytes =
      2.0 * batch * context * kv_heads * kDim * 2 + batch * (q_stride + q_heads * kDim) * 2.0;
  out.push_back({"attention",
                 "decode b=" + std::to_string(batch) + " ctx=" + std::to_string(context) +
                     (bucket > 0 ? " bucket=" + std::to_string(bucket) : ""),
                 us, bytes, 0});
  FreeAll(k);
  FreeAll(v);
  FreeAll(q);
  FreeAll(o);
  for (void* p : {static_cast<void*>(d_tables), static_cast<void*>(d_seq), static_cast<void*>(d_ctx),
                  static_cast<void*>(ws)}) {
    CUDA_CHECK(cudaFree(p));
  }
}

// Argmax and top-k/top-p/min-p sampling over `rows` rows of the 151936-token vocabulary.
void BenchSampling(int rows, cudaStream_t stream, std::vector<Result>& out) {
  constexpr int kVocab = 151936;
  std::mt19937 rng(rows);
  std::normal_distribution<float> dist(0.f, 3.f);
  std::vector<float> logits(static_cast<size_t>(rows) * kVocab);
  for (float& x : logits) x = dist(rng);
  const std::vector<float> temperature(rows, 0.8f), top_p(rows, 0.9f), min_p(rows, 0.05f);
  const std::vector<int32_t> top_k(rows, 50);
  const std::vector<uint64_t> seeds(rows, 42);
  float *d_logits, *d_temp, *d_top_p, *d_min_p;
  int32_t *d_top_k, *d_out;
  uint64_t* d_seeds;
  const auto upload = [](auto*& dst, const auto& src) {
    CUDA_CHECK(cudaMalloc(&dst, src.size() * sizeof(src[0])));
    CUDA_CHECK(cudaMemcpy(dst, src.data(), src.size() * sizeof(src[0]), cudaMemcpyHostToDevice));
  };
  upload(d_logits, logits);
  upload(d_temp, temperature);
  upload(d_top_p, top_p);
  upload(d_min_p, min_p);
  upload(d_top_k, top_k);
  upload(d_seeds, seeds);
  CUDA_CHECK(cudaMalloc(&d_out, rows * sizeof(int32_t)));
  void* d_workspace;
  CUDA_CHECK(cudaMalloc(&d_workspace, kernels::SamplingWorkspaceBytes(rows)));
  const double bytes = static_cast<double>(rows) * kVocab * 4;
  const std::string suffix = " b=" + std::to_string(rows);
  out.push_back(
      {"sampling", "argmax" + suffix,
       TimeInGraph(
           stream, [&](int) { kernels::ArgmaxRows(d_logits, d_out, d_workspace, rows, kVocab, stream); }, 20),
       bytes, 0});
  // The hints as CudaSampler gives them: these rows filtered (the temperature-alone case sets them again).
  kernels::SamplingParams params{d_temp, d_top_k, d_top_p, d_min_p, d_seeds, d_seeds};
  params.any_temperature_alone = false;
  kernels::SamplingParams one_block = params;  // every sampled row in one block: the passes over slices off
  one_block.any_temperature_alone = one_block.any_filtered = false;
  const auto sample = [&](int) {
    kernels::SampleRows(d_logits, params, d_out, d_workspace, rows, kVocab, stream);
  };
  const auto sample_in_one_block = [&](int) {
    kernels::SampleRows(d_logits, one_block, d_out, d_workspace, rows, kVocab, stream);
  };
  // The settings' time over the row's slices, then in one block a row.
  const auto time_both = [&](const std::string& name) {
    out.push_back({"sampling", name + suffix, TimeInGraph(stream, sample, 5), bytes, 0});
    out.push_back(
        {"sampling", name + ", one block" + suffix, TimeInGraph(stream, sample_in_one_block, 5), bytes, 0});
  };
  time_both("top-k 50, top-p 0.9, min-p 0.05");
  // The OpenAI-style requests' settings: top-p alone, then the temperature alone.
  const std::vector<int32_t> no_top_k(rows, 0);
  const std::vector<float> no_min_p(rows, 0.f), no_top_p(rows, 1.f);
  CUDA_CHECK(cudaMemcpy(d_top_k, no_top_k.data(), rows * sizeof(int32_t), cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(d_min_p, no_min_p.data(), rows * sizeof(float), cudaMemcpyHostToDevice));
  time_both("top-p 0.9");
  CUDA_CHECK(cudaMemcpy(d_top_p, no_top_p.data(), rows * sizeof(float), cudaMemcpyHostToDevice));
  params.any_temperature_alone = true;
  params.any_filtered = false;
  time_both("temperature alone");
  params.any_temperature_alone = false;
  params.any_filtered = true;
  // A language model's peaked rows: twenty tokens 12 above the rest, so top-p keeps few candidates.
  std::vector<float> peaked = logits;
  for (int r = 0; r < rows; ++r) {
    for (int i = 0; i < 20; ++i)
      peaked[static_cast<size_t>(r) * kVocab + (7919 * (i + 1) + r) % kVocab] += 12.f;
  }
  CUDA_CHECK(cudaMemcpy(d_logits, peaked.data(), peaked.size() * sizeof(float), cudaMemcpyHostToDevice));
  const std::vector<float> some_top_p(rows, 0.9f);
  CUDA_CHECK(cudaMemcpy(d_top_p, some_top_p.data(), rows * sizeof(float), cudaMemcpyHostToDevice));
  time_both("top-p 0.9, peaked logits");
  CUDA_CHECK(cudaMemcpy(d_top_p, no_top_p.data(), rows * sizeof(float), cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(d_logits, logits.data(), logits.size() * sizeof(float), cudaMemcpyHostToDevice));
  const std::vector<float> zero_temperature(rows, 0.f);  // greedy rows: the engine's path at temperature 0
  CUDA_CHECK(cudaMemcpy(d_temp, zero_temperature.data(), rows * sizeof(float), cudaMemcpyHostToDevice));
  kernels::SamplingParams greedy{d_temp, d_top_k, d_top_p, d_min_p, d_seeds, d_seeds};
  greedy.any_temperature_alone = greedy.any_filtered = false;  // as CudaSampler tells it for greedy rows
  out.push_back(
      {"sampling", "greedy rows through SampleRows" + suffix,
       TimeInGraph(
           stream,
           [&](int) { kernels::SampleRows(d_logits, greedy, d_out, d_workspace, rows, kVocab, stream); }, 20),
       bytes, 0});
  for (void* p : {static_cast<void*>(d_logits), static_cast<void*>(d_temp), static_cast<void*>(d_top_p),
                  static_cast<void*>(d_min_p), static_cast<void*>(d_top_k), static_cast<void*>(d_seeds),
                  static_cast<void*>(d_out), d_workspace}) {
    CUDA_CHECK(cudaFree(p));
  }
}

// Greedy tokens from the LM head at decode's row counts: the logits and an argmax, against LmHeadArgmax and
// (at 1-4 rows) LmHeadScreenedArgmax.
void BenchLmHeadArgmax(cudaStream_t stream, std::vector<Result>& out) {
  LinearOperands operands(kLmHead);
  kernels::GemmContext gemm;
  constexpr int kMaxRows = LinearOperands::kMaxRows;
  void* workspace;
  int32_t* tokens;
  CUDA_CHECK(cudaMalloc(&workspace, std::max({kernels::SamplingWorkspaceBytes(kMaxRows),
                                              kernels::LmHeadArgmaxWorkspaceBytes(kMaxRows),
                                              kernels::LmHeadScreenWorkspaceBytes(kLmHead.n)})));
  CUDA_CHECK(cudaMalloc(&tokens, kMaxRows * sizeof(int32_t)));
  for (int m : {1, 2, 4, 8, 16, 32, 64}) {
    const std::string rows = " m=" + std::to_string(m);
    const double weights = static_cast<double>(kLmHead.n) * kLmHead.k * 2;
    out.push_back({"lm_head", "logits, then argmax" + rows,
                   operands.TimeLogitsThenArgmax(gemm, m, workspace, tokens, stream), weights, 0});
    out.push_back({"lm_head", "LmHeadArgmax" + rows, operands.TimeLmHeadArgmax(m, workspace, tokens, stream),
                   weights, 0});
    if (m <= 4) {  // the int8 copy: half the bytes
      out.push_back({"lm_head", "LmHeadScreenedArgmax" + rows,
                     operands.TimeLmHeadScreened(m, 8, workspace, tokens, stream), weights / 2, 0});
    }
    if (m <= 4 && kernels::LmHeadScreen4Fits(kLmHead.k)) {  // the int4 copy: a quarter of the bytes
      out.push_back({"lm_head", "LmHeadScreenedArgmax int4" + rows,
                     operands.TimeLmHeadScreened(m, 4, workspace, tokens, stream), weights / 4, 0});
    }
  }
  CUDA_CHECK(cudaFree(workspace));
  CUDA_CHECK(cudaFree(tokens));
}

int Main(int argc, char** argv) {
  const bool model = !(argc > 1 && std::strcmp(argv[1], "--no-model") == 0);
  // --attention BATCH CONTEXT BUCKET [KV_HEADS]: that attention case alone; --layer ROWS: one layer's fused
  // GEMVs (rows <= 8) or tensor-core projections (more) alone (for a profiler).
  const bool attention_only = argc > 4 && std::strcmp(argv[1], "--attention") == 0;
  const bool layer_only = argc > 2 && std::strcmp(argv[1], "--layer") == 0;
  // --steps [MAX_BATCH [MIN_BATCH]]: the whole model's decode steps alone (with MAX_BATCH, only the runner's
  // default at batches up to it, and from MIN_BATCH); --split-k: cuBLASLt's k splits for the projections.
  const bool steps_only = argc > 1 && std::strcmp(argv[1], "--steps") == 0;
  const bool split_k_only = argc > 1 && std::strcmp(argv[1], "--split-k") == 0;
  if (!HaveCudaDevice("doze_kernel_bench")) return 1;
  cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  cudaStream_t stream;
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  std::vector<Result> results;
  if (argc > 2 && std::strcmp(argv[1], "--timeline") == 0) {  // --timeline ROWS [greedy]: BenchTimeline
    BenchTimeline(std::atoi(argv[2]), argc > 3 && std::strcmp(argv[3], "greedy") == 0);
    return 0;
  }
  if (argc > 2 && std::strcmp(argv[1], "--pair") == 0) {  // --pair ROWS: BenchDecodePair
    BenchDecodePair(results, std::atoi(argv[2]));
    Report(results, prop.name);
    return 0;
  }
  if (steps_only) {
    BenchDecodeSteps(results, argc > 2 ? std::atoi(argv[2]) : 0, argc > 3 ? std::atoi(argv[3]) : 1);
    Report(results, prop.name);
    return 0;
  }
  if (argc > 1 && std::strcmp(argv[1], "--sampling") == 0) {
    for (int rows : {1, 64}) BenchSampling(rows, stream, results);
    Report(results, prop.name);
    return 0;
  }
  if (argc > 1 && std::strcmp(argv[1], "--lm-head") == 0) {
    BenchLmHeadArgmax(stream, results);
    Report(results, prop.name);
    return 0;
  }
  if (split_k_only) {
    kernels::GemmContext gemm;
    for (int m : {32, 64}) {
      for (const LinearShape& s : kProjections) BenchSplitK(s, m, stream, gemm, results);
    }
    Report(results, prop.name);
    return 0;
  }
  if (attention_only || layer_only) {
    if (attention_only)
      BenchAttention(std::atoi(argv[2]), std::atoi(argv[3]), stream, results, std::atoi(argv[4]),
                     argc > 5 ? std::atoi(argv[5]) : 2);
    const int rows = layer_only ? std::atoi(argv[2]) : 0;
    if (layer_only && rows <= kernels::kGemvMaxRows) BenchDecodeGemv(rows, stream, results);
    if (layer_only && rows > kernels::kGemvMaxRows) BenchDecodeMma(rows, stream, results);
    Report(results, prop.name);
    return 0;
  }
  {
    kernels::GemmContext gemm;
    for (const LinearShape& s : kProjections) BenchLinear(s, stream, gemm, results);
    BenchLinear(kLmHead, stream, gemm, results);
  }
  for (int m : {1, 8}) BenchDecodeGemv(m, stream, results);
  for (int m : {8, 16, 32, 64}) BenchDecodeMma(m, stream, results);
  BenchElementwise(64, stream, results);
  for (int batch : {1, 8, 64}) {
    for (int context : {512, 2048}) BenchAttention(batch, context, stream, results);
  }
  BenchAttention(64, 640, stream, results, 1024);  // doze bench's batch 64: contexts 512 to 768
  for (int rows : {1, 64}) BenchSampling(rows, stream, results);
  CUDA_CHECK(cudaStreamDestroy(stream));
  Report(results, prop.name);  // before the model part, so a failure there keeps these
  if (!model) return 0;
  std::vector<Result> steps;
  BenchDecodeSteps(steps);
  Report(steps, prop.name);
  return 0;
}

}  // namespace
}  // namespace doze::bench

int main(int argc, char** argv) { return doze::bench::Main(argc, argv); }
