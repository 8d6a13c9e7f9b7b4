#include "bench/decode_step_bench.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>

#include "bench/kernel_timeline.h"
#include "kernels/gemv.h"
#include "worker/backend/cuda/cuda_model_runner.h"
#include "worker/common/half.h"

namespace doze::bench {
namespace {

constexpr int kContext = 512;
constexpr int kBlockSize = 16;
constexpr int kBlocksPerSeq = 40;  // 640 tokens: the prompt and the decode steps
constexpr double kKvBytesPerToken = 12288;

ModelConfig QwenConfig() {
  ModelConfig c;
  c.hidden_size = 896, c.intermediate_size = 4864, c.num_hidden_layers = 24;
  c.num_attention_heads = 14, c.num_key_value_heads = 2, c.head_dim = 64;
  c.vocab_size = 151936, c.max_position_embeddings = 32768, c.rope_theta = 1000000.0;
  c.rms_norm_eps = 1e-6, c.tie_word_embeddings = true;
  return c;
}

// Random bf16 weights in host memory; every layer views the same tensors (the upload copies them apart).
class HostModel {
 public:
  HostModel() {
    const ModelConfig c = QwenConfig();
    const int64_t h = c.hidden_size, q = c.q_size(), kv = c.kv_size(), i = c.intermediate_size;
    weights.embed_tokens = Make({c.vocab_size, h}, 0.f, 0.05f);
    weights.lm_head = weights.embed_tokens;
    weights.norm = Make({h}, 1.f, 0.1f);
    LayerWeights l{Make({h}, 1.f, 0.1f),      Make({q, h}, 0.f, 0.05f), Make({q}, 0.f, 0.1f),
                   Make({kv, h}, 0.f, 0.05f), Make({kv}, 0.f, 0.1f),    Make({kv, h}, 0.f, 0.05f),
                   Make({kv}, 0.f, 0.1f),     Make({h, q}, 0.f, 0.05f), Make({h}, 1.f, 0.1f),
                   Make({i, h}, 0.f, 0.05f),  Make({i, h}, 0.f, 0.05f), Make({h, i}, 0.f, 0.05f)};
    weights.layers.assign(c.num_hidden_layers, l);
  }
  ModelWeights weights;

 private:
  TensorView Make(std::vector<int64_t> shape, float center, float spread) {
    TensorView t{DType::kBF16, shape, nullptr};
    auto& data = storage_.emplace_back(std::make_unique<std::vector<uint16_t>>(t.num_elements()));
    for (uint16_t& x : *data) {
      state_ = state_ * 6364136223846793005ull + 1442695040888963407ull;
      x = FloatToBf16(center + spread * (static_cast<float>(state_ >> 40) / 8388608.0f - 1.f));
    }
    t.data = data->data();
    return t;
  }
  uint64_t state_ = 1;
  std::vector<std::unique_ptr<std::vector<uint16_t>>> storage_;
};

// One step appending `num_new` tokens to sequences [0, num_seqs) of lengths `lens`; seq s owns blocks
// [s * kBlocksPerSeq, ...).
BatchMetadata Step(std::vector<int>& lens, int first_seq, int num_seqs, int num_new) {
  BatchMetadata b;
  b.max_blocks_per_seq = kBlocksPerSeq;
  b.query_start_loc.push_back(0);
  for (int s = first_seq; s < first_seq + num_seqs; ++s) {
    for (int i = 0; i < num_new; ++i) {
      const int pos = lens[s] + i;
      b.token_ids.push_back((s * 7919 + pos * 104729) % 151936);
      b.positions.push_back(pos);
      b.slot_mapping.push_back((s * kBlocksPerSeq + pos / kBlockSize) * kBlockSize + pos % kBlockSize);
    }
    lens[s] += num_new;
    b.logits_indices.push_back(b.num_tokens() - 1);
    b.query_start_loc.push_back(b.num_tokens());
    b.seq_lens.push_back(lens[s]);
    for (int k = 0; k < kBlocksPerSeq; ++k) b.block_tables.push_back(s * kBlocksPerSeq + k);
  }
  return b;
}

// Median microseconds of `fn` over `trials` host-timed runs, each ended by a device synchronisation.
template <typename Fn>
double TimeHost(int trials, Fn fn) {
  std::vector<double> us;
  for (int t = 0; t < trials; ++t) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count());
  }
  return Median(us);
}

void Check(const absl::Status& status) {
  if (status.ok()) return;
  std::fprintf(stderr, "doze_kernel_bench: %s\n", status.ToString().c_str());
  std::exit(1);
}

// Fills `batch` sequences with kContext tokens and captures the decode graph of that batch.
void Warm(CudaModelRunner& runner, std::vector<int>& lens) {
  const int batch = static_cast<int>(lens.size());
  for (int s = 0; s < batch; s += 16)
    Check(runner.Forward(Step(lens, s, std::min(16, batch - s), kContext)).status());
  for (int i = 0; i < 3; ++i) Check(runner.Forward(Step(lens, 0, batch, 1)).status());
}

// Bytes a decode step of `rows` sequences must move: every weight once and their KV caches.
double DecodeStepBytes(int rows) { return 988065536.0 + rows * (kContext + 20) * kKvBytesPerToken; }

// The GPU's own time a step, without the host's turnaround between a step's end and the next launch: ten
// rounds of `enqueue` (each enqueuing one step on each of `runners`) back to back, then one wait.
template <typename Enqueue>
double QueuedStepUs(std::initializer_list<const CudaModelRunner*> runners, Enqueue enqueue) {
  constexpr int kQueued = 10;
  return TimeHost(5,
                  [&] {
                    for (int i = 0; i < kQueued; ++i) enqueue();
                    for (const CudaModelRunner* runner : runners)
                      CUDA_CHECK(cudaStreamSynchronize(runner->stream()));
                  }) /
         kQueued;
}

void BenchDecode(CudaModelRunner& runner, int batch, const std::string& label, std::vector<Result>& out) {
  std::vector<int> lens(batch, 0);
  Warm(runner, lens);
  const double bytes = DecodeStepBytes(batch);
  const double host_us = TimeHost(20, [&] { Check(runner.Forward(Step(lens, 0, batch, 1)).status()); });
  const std::string name = "decode b=" + std::to_string(batch) + " ctx=512 " + label;
  out.push_back({"model", name + " host logits", host_us, bytes, batch * 1e6 / host_us});
  const double device_us = TimeHost(20, [&] {
    Check(runner.ForwardOnDevice(Step(lens, 0, batch, 1)).status());
    CUDA_CHECK(cudaStreamSynchronize(runner.stream()));
  });
  out.push_back({"model", name + " device logits", device_us, bytes, batch * 1e6 / device_us});
  const double queued_us =
      QueuedStepUs({&runner}, [&] { Check(runner.ForwardOnDevice(Step(lens, 0, batch, 1)).status()); });
  out.push_back({"model", name + " device logits, queued", queued_us, bytes, batch * 1e6 / queued_us});
}

void BenchPrefill(CudaModelRunner& runner, std::vector<Result>& out) {
  std::vector<int> lens(1, 0);
  const double us = TimeHost(7, [&] {
    lens[0] = 0;
    Check(runner.Forward(Step(lens, 0, 1, kContext)).status());
  });
  out.push_back({"model", "prefill 512 tokens (TTFT)", us, 0, kContext * 1e6 / us});
}

std::unique_ptr<CudaModelRunner> MakeRunner(const HostModel& model, int gemv_max_rows, int mma_max_rows,
                                            int num_kv_blocks = 0) {
  CudaRunnerOptions options;
  options.gemv_max_rows = gemv_max_rows;
  options.decode_mma_max_rows = mma_max_rows;
  options.max_num_seqs = 64;
  options.num_kv_blocks = num_kv_blocks;
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::unique_ptr<CudaModelRunner>> runner =
      CudaModelRunner::Create(QwenConfig(), model.weights, options);
  Check(runner.status());
  std::fprintf(stderr, "runner ready in %.0f ms\n",
               std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  return std::move(*runner);
}

}  // namespace

void BenchDecodePair(std::vector<Result>& out, int batch) {
  const HostModel model;
  const CudaRunnerOptions defaults;
  const int blocks = 64 * kBlocksPerSeq;
  std::unique_ptr<CudaModelRunner> a =
      MakeRunner(model, defaults.gemv_max_rows, defaults.decode_mma_max_rows, blocks);
  std::unique_ptr<CudaModelRunner> b =
      MakeRunner(model, defaults.gemv_max_rows, defaults.decode_mma_max_rows, blocks);
  std::vector<int> lens_a(batch, 0), lens_b(batch, 0), lens_both(2 * batch, 0);
  Warm(*a, lens_a);
  Warm(*b, lens_b);
  const double bytes = DecodeStepBytes(2 * batch);
  const double pair_us = QueuedStepUs({a.get(), b.get()}, [&] {
    Check(a->ForwardOnDevice(Step(lens_a, 0, batch, 1)).status());
    Check(b->ForwardOnDevice(Step(lens_b, 0, batch, 1)).status());
  });
  out.push_back({"model", "decode 2 x b=" + std::to_string(batch) + " ctx=512 on two streams, queued",
                 pair_us, bytes, 2 * batch * 1e6 / pair_us});
  if (2 * batch > 64) return;
  Warm(*a, lens_both);
  const double one_us =
      QueuedStepUs({a.get()}, [&] { Check(a->ForwardOnDevice(Step(lens_both, 0, 2 * batch, 1)).status()); });
  out.push_back({"model", "decode b=" + std::to_string(2 * batch) + " ctx=512 on one stream, queued", one_us,
                 bytes, 2 * batch * 1e6 / one_us});
}

namespace {

// A kernel's totals over the steps of a timeline.
struct KernelShare {
  int calls = 0;
  double critical_us = 0;  // how much later than the kernel ended before it each call ended
  double span_us = 0;      // each call's start to end, including any wait on the kernel before
};

// "Name[gx x gy x gz]": one kernel as launched (the same function at other grids is another projection).
std::string KernelKey(const KernelSpan& span) {
  return span.name + "[" + std::to_string(span.grid[0]) + "x" + std::to_string(span.grid[1]) + "x" +
         std::to_string(span.grid[2]) + "]";
}

// Adds one step's kernels and copies to `shares`; returns the step's time: from `previous_end` (the end of
// the step before) to its last end, so that the gap between steps counts too (to the step's first op, which
// the GPU starts only after the gap).
double AddStep(std::vector<KernelSpan> step, uint64_t previous_end,
               std::map<std::string, KernelShare>& shares) {
  const uint64_t first = previous_end;
  std::sort(step.begin(), step.end(),
            [](const KernelSpan& a, const KernelSpan& b) { return a.end_ns < b.end_ns; });
  for (const KernelSpan& span : step) {
    KernelShare& share = shares[KernelKey(span)];
    ++share.calls;
    share.critical_us += (span.end_ns - previous_end) / 1e3;
    share.span_us += (span.end_ns - span.start_ns) / 1e3;
    previous_end = span.end_ns;
  }
  return (previous_end - first) / 1e3;
}

void PrintTimeline(int batch, int steps, double step_us, const std::map<std::string, KernelShare>& shares) {
  std::printf(
      "{\"bench\":\"doze_kernel_bench --timeline\",\"batch\":%d,\"steps\":%d,\"step_us\":%.2f,\"kernels\":[",
      batch, steps, step_us / steps);
  bool first = true;
  for (const auto& [name, share] : shares) {
    std::printf("%s{\"name\":\"%s\",\"calls\":%.1f,\"critical_us\":%.2f,\"span_us\":%.2f}", first ? "" : ",",
                name.c_str(), static_cast<double>(share.calls) / steps, share.critical_us / steps,
                share.span_us / steps);
    first = false;
  }
  std::printf("]}\n\n%-48s %8s %14s %12s %12s\n", "kernel", "calls", "critical us", "us a call",
              "span a call");
  for (const auto& [name, share] : shares) {
    std::printf("%-48s %8.1f %14.2f %12.2f %12.2f\n", name.c_str(), static_cast<double>(share.calls) / steps,
                share.critical_us / steps, share.critical_us / share.calls, share.span_us / share.calls);
  }
  std::printf("%-48s %8s %14.2f\n", "step", "", step_us / steps);
}

}  // namespace

void BenchTimeline(int batch, bool greedy) {
  const HostModel model;
  const CudaRunnerOptions defaults;
  std::unique_ptr<CudaModelRunner> runner =
      MakeRunner(model, defaults.gemv_max_rows, defaults.decode_mma_max_rows);
  std::vector<int> lens(batch, 0);
  Warm(*runner, lens);
  constexpr int kSteps = 6;
  // Greedy: as the engine runs steps (asynchronous scheduling): each step's tokens are taken on the device
  // from the step before, which is collected after the next one is submitted.
  const std::vector<DeviceSamplingRow> rows(batch);
  const auto chained = [&] {
    BatchMetadata b = Step(lens, 0, batch, 1);
    for (int r = 0; r < batch; ++r) b.token_sources.push_back(r);
    return b;
  };
  if (greedy) {
    Check(runner->SubmitForwardAndSample(Step(lens, 0, batch, 1), rows));
    CUDA_CHECK(cudaStreamSynchronize(runner->stream()));
  }
  StartKernelTimeline();
  for (int i = 0; i < kSteps; ++i) {
    if (greedy) {
      Check(runner->SubmitForwardAndSample(chained(), rows));
      Check(runner->CollectSamples().status());
    } else {
      Check(runner->ForwardOnDevice(Step(lens, 0, batch, 1)).status());
    }
  }
  CUDA_CHECK(cudaStreamSynchronize(runner->stream()));
  const std::vector<KernelSpan> spans = StopKernelTimeline();
  if (greedy) Check(runner->CollectSamples().status());
  // Every step runs the same kernels and copies: kSteps equal runs in start order. The first and last
  // steps are left out (the queue fills and drains).
  if (spans.empty() || spans.size() % kSteps != 0) {
    std::fprintf(stderr, "doze_kernel_bench: %zu kernels and copies in %d steps\n", spans.size(), kSteps);
    std::exit(1);
  }
  const size_t per_step = spans.size() / kSteps;
  std::map<std::string, KernelShare> shares;
  double step_us = 0;
  for (int s = 1; s + 1 < kSteps; ++s) {
    const uint64_t previous_end =
        std::max_element(spans.begin() + (s - 1) * per_step, spans.begin() + s * per_step,
                         [](const KernelSpan& a, const KernelSpan& b) { return a.end_ns < b.end_ns; })
            ->end_ns;
    step_us +=
        AddStep(std::vector<KernelSpan>(spans.begin() + s * per_step, spans.begin() + (s + 1) * per_step),
                previous_end, shares);
  }
  PrintTimeline(batch, kSteps - 2, step_us, shares);
}

void BenchDecodeSteps(std::vector<Result>& out, int max_batch, int min_batch) {
  const HostModel model;
  const CudaRunnerOptions defaults;
  struct Choice {
    const char* label;
    int gemv_max_rows, mma_max_rows;
    bool prefill;
    int min_batch, max_batch;  // the batches where the choice differs from the default
  };
  // The runner's default, then cuBLASLt alone, the fused GEMVs up to 8 rows and the tensor-core kernels up to
  // 64 rows, each only at the batches where it takes another path than the default.
  const Choice choices[] = {
      {"default", defaults.gemv_max_rows, defaults.decode_mma_max_rows, true, 1, 64},
      {"cublasLt", 0, 0, false, 1, defaults.decode_mma_max_rows},
      {"gemv<=8", kernels::kGemvMaxRows, defaults.decode_mma_max_rows, false, defaults.gemv_max_rows + 1,
       kernels::kGemvMaxRows},
      {"mma<=64", defaults.gemv_max_rows, 64, false, defaults.decode_mma_max_rows + 1, 64}};
  for (const Choice& c : choices) {
    if (max_batch > 0 && &c != &choices[0]) break;  // the default alone, up to max_batch
    std::unique_ptr<CudaModelRunner> runner = MakeRunner(model, c.gemv_max_rows, c.mma_max_rows);
    if (c.prefill && max_batch == 0) BenchPrefill(*runner, out);
    for (int batch : {1, 2, 4, 8, 16, 32, 64}) {
      if (max_batch > 0 && batch > max_batch) break;
      if (batch < min_batch) continue;
      if (batch >= c.min_batch && batch <= c.max_batch) BenchDecode(*runner, batch, c.label, out);
    }
  }
}

}  // namespace doze::bench
