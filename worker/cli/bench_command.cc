// doze bench: decode tokens/s per batch size, time to first token, prefill tokens/s and memory, as one JSON
// object and a short table. Prompts are random token ids, so the prefix cache never helps.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "worker/cli/command.h"
#include "worker/cli/engine_flags.h"
#include "worker/common/logging.h"
#include "worker/common/status_macros.h"
#include "worker/runtime/cuda_backend.h"

namespace doze::cli {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

std::vector<int32_t> RandomPrompt(std::mt19937& rng, int length) {
  std::uniform_int_distribution<int32_t> token(0, 151642);
  std::vector<int32_t> ids(length);
  for (int32_t& id : ids) id = token(rng);
  return ids;
}

// How the timed requests sample: greedy unless --temperature says otherwise.
struct BenchSampling {
  float temperature = 0.0f;
  float top_p = 1.0f;
};

SamplingParams FixedLength(int max_tokens, const BenchSampling& sampling = {}) {
  SamplingParams params;
  params.temperature = sampling.temperature;
  params.top_p = sampling.top_p;
  params.max_tokens = max_tokens;
  params.ignore_eos = true;
  return params;
}

// The median and the largest of `values` (not empty).
std::pair<double, double> MedianAndMax(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return {values[values.size() / 2], values.back()};
}

// Seconds from adding one prompt of `length` tokens to its first token; the engine's error where it refuses
// the prompt (longer than the context, or than the KV cache holds).
absl::StatusOr<double> OnePromptToFirstToken(Engine& engine, std::mt19937& rng, int length) {
  auto start = Clock::now();
  RETURN_IF_ERROR(engine.AddRequest(RandomPrompt(rng, length), FixedLength(1)).status());
  while (engine.HasUnfinished()) engine.Step();
  return Seconds(start);
}

// Prompts of one length timed for the time to first token, after one more that is not.
constexpr int kTimedPrompts = 5;

struct FirstTokenTimes {
  // The untimed first prompt of this length: kernels and GEMM plans loaded on first use.
  double first_use_s = 0;
  double median_s = 0;  // of kTimedPrompts after it: what a warm worker answers in
};

// The time to first token of a `length`-token prompt: the median of kTimedPrompts single prompts, after a
// first one whose time includes what any prompt of that length loads once (it varied from 12 to 24 ms at
// 2,048 tokens on the H100 with what ran before it).
absl::StatusOr<FirstTokenTimes> TimeToFirstToken(Engine& engine, std::mt19937& rng, int length) {
  FirstTokenTimes times;
  ASSIGN_OR_RETURN(times.first_use_s, OnePromptToFirstToken(engine, rng, length));
  std::vector<double> timed(kTimedPrompts);
  for (double& s : timed) {
    ASSIGN_OR_RETURN(s, OnePromptToFirstToken(engine, rng, length));
  }
  times.median_s = MedianAndMax(timed).first;
  return times;
}

struct DecodeFigures {
  double step_ms = 0;
  double tokens_per_s = 0;
  double prefill_tokens_per_s = 0;
  double first_steps_ms = 0;  // the untimed first decode steps, which capture the batch's CUDA graph
  double median_step_ms = 0;  // of the timed steps: the steady state, whatever a few slow steps cost
  double max_step_ms = 0;
};

// Decode steps of a batch left out of the steady-state figure: the first of a batch size runs eagerly and
// then captures its CUDA graph (a one-time cost per batch and context bucket, reported apart).
constexpr int kUntimedDecodeSteps = 2;
// The shortest --gen-len with a timed step: the first token (prefill), the untimed steps, one timed step and
// the step in which the requests finish.
constexpr int kMinGenLen = kUntimedDecodeSteps + 3;

// Runs `batch` prompts together; decode is timed over the steps that decode all `batch` sequences and finish
// none, after every prompt has its first token and after the first kUntimedDecodeSteps.
absl::StatusOr<DecodeFigures> MeasureBatch(Engine& engine, std::mt19937& rng, int batch, int prompt_len,
                                           int gen_len, const BenchSampling& sampling) {
  auto start = Clock::now();
  for (int i = 0; i < batch; ++i) {
    RETURN_IF_ERROR(
        engine.AddRequest(RandomPrompt(rng, prompt_len), FixedLength(gen_len, sampling)).status());
  }
  int first_tokens = 0, decode_steps = 0, untimed_steps = 0;
  double prefill_s = 0;
  Clock::time_point first_decode_start, decode_start;
  std::vector<double> steps_ms;
  // DOZE_BENCH_STEPS=1 prints every timed step's duration to stderr (to find where slow steps fall).
  const bool print_steps = std::getenv("DOZE_BENCH_STEPS") != nullptr;
  while (engine.HasUnfinished()) {
    const Clock::time_point step_start = Clock::now();
    std::vector<RequestOutput> outputs = engine.Step();
    if (first_tokens < batch) {
      for (const RequestOutput& out : outputs) first_tokens += out.usage.completion_tokens == 1;
      if (first_tokens == batch) {
        prefill_s = Seconds(start);
        first_decode_start = decode_start = Clock::now();
      }
    } else if (static_cast<int>(outputs.size()) == batch &&
               std::none_of(outputs.begin(), outputs.end(),
                            [](const RequestOutput& o) { return o.finished; })) {
      // A step in which requests finish is not one of this batch size: with async scheduling it also launched
      // the next step, with fewer rows (perhaps in a CUDA graph still to capture).
      if (untimed_steps < kUntimedDecodeSteps) {
        if (++untimed_steps == kUntimedDecodeSteps) decode_start = Clock::now();
      } else {
        ++decode_steps;
        steps_ms.push_back(1e3 * Seconds(step_start));
        if (print_steps)
          std::fprintf(stderr, "batch %d step %d: %.3f ms\n", batch, decode_steps, steps_ms.back());
      }
    }
  }
  DecodeFigures figures;
  // The timed steps' own durations: the steps in between (prompts that reached decode a chunked-prefill step
  // apart finish apart, so the batch's last steps run fewer rows, in CUDA graphs of other sizes that may
  // still need capturing) are not steps of this batch size.
  double decode_s = 0;
  for (double ms : steps_ms) decode_s += ms / 1e3;
  if (decode_steps > 0) {
    figures.step_ms = 1e3 * decode_s / decode_steps;
    figures.tokens_per_s = batch * decode_steps / decode_s;
    std::tie(figures.median_step_ms, figures.max_step_ms) = MedianAndMax(steps_ms);
  }
  figures.first_steps_ms = 1e3 * std::chrono::duration<double>(decode_start - first_decode_start).count();
  figures.prefill_tokens_per_s = batch * prompt_len / prefill_s;
  return figures;
}

// A comma-separated list of positive integers given to --`flag` (empty text: none, where `allow_empty`).
absl::StatusOr<std::vector<int>> ParsePositiveList(const char* flag, const std::string& text,
                                                   bool allow_empty) {
  std::vector<int> values;
  if (text.empty() && allow_empty) return values;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int value = 0;
    if (!absl::SimpleAtoi(part, &value) || value <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, ": \"", part, "\" is not a positive integer (a list: 1,8,64)"));
    }
    values.push_back(value);
  }
  return values;
}

// Bytes a decode step must move: every weight once plus the KV of every context token (bytes_per_kv_token
// each).
double DecodeStepBytes(const ModelInstance& model, int batch, int context, double bytes_per_kv_token) {
  return static_cast<double>(model.checkpoint().weight_bytes()) + batch * context * bytes_per_kv_token;
}

}  // namespace

int BenchCommand(int argc, char** argv) {
  po::options_description options("doze bench");
  options.add_options()("batch", po::value<std::string>()->default_value("1"), "batch sizes, e.g. 1,8,64")(
      "prompt-len", po::value<int>()->default_value(512), "prompt tokens per request")(
      "gen-len", po::value<int>()->default_value(256), "generated tokens per request")(
      "ttft-lens", po::value<std::string>()->default_value("512,2048"),
      "prompt lengths timed to first token")("temperature", po::value<float>()->default_value(0.0f),
                                             "decode requests' temperature (0: greedy)")(
      "top-p", po::value<float>()->default_value(1.0f), "decode requests' top-p (1: off)");
  AddEngineOptions(options);
  po::variables_map vm;
  if (auto code = ParseOptions(argc, argv, options, vm,
                               "doze bench --model DIR [--backend cpu|cuda] [--batch 1,8,64]"))
    return *code;
  const BenchSampling sampling{vm["temperature"].as<float>(), vm["top-p"].as<float>()};
  if (!(sampling.temperature >= 0.0f) || !(sampling.top_p > 0.0f && sampling.top_p <= 1.0f))
    return Fail("--temperature must be >= 0 and --top-p in (0, 1]");
  const int prompt_len = vm["prompt-len"].as<int>(), gen_len = vm["gen-len"].as<int>();
  if (prompt_len < 1) return Fail("--prompt-len must be at least 1");
  if (gen_len < kMinGenLen)
    return Fail(absl::StrCat("--gen-len must be at least ", kMinGenLen, " (for one timed decode step)"));
  absl::StatusOr<std::vector<int>> batches = ParsePositiveList("batch", vm["batch"].as<std::string>(), false);
  if (!batches.ok()) return Fail(std::string(batches.status().message()));
  absl::StatusOr<std::vector<int>> ttft_lens =
      ParsePositiveList("ttft-lens", vm["ttft-lens"].as<std::string>(), true);
  if (!ttft_lens.ok()) return Fail(std::string(ttft_lens.status().message()));
  auto model = ModelInstance::Create(ModelInstanceOptionsFromFlags(vm));
  if (!model.ok()) return Fail(std::string(model.status().message()));
  Engine& engine = (*model)->engine();
  std::mt19937 rng(1234);
  const ModelConfig& config = (*model)->checkpoint().config();
  const double kv_bytes = (*model)->backend() == "cuda"
                              ? 2.0 * 2 * config.num_hidden_layers * config.kv_size()
                              : 4.0 * 2 * config.num_hidden_layers * config.kv_size();

  // Warm-up (first-touch of weights and buffers), with a prompt short enough for any context.
  if (absl::StatusOr<FirstTokenTimes> warm = TimeToFirstToken(engine, rng, std::min(16, prompt_len));
      !warm.ok())
    return Fail(std::string(warm.status().message()));
  json report = {{"model", vm["model"].as<std::string>()},
                 {"backend", (*model)->backend()},
                 {"prompt_len", prompt_len},
                 {"gen_len", gen_len},
                 {"temperature", sampling.temperature},
                 {"top_p", sampling.top_p},
                 {"decode", json::array()},
                 {"ttft_ms", json::object()}};
  // The roofline: the bytes a step must move over this device's measured copy bandwidth (3.0 TB/s on the
  // H100 of docs/benchmarks.md); none for the CPU backend.
  std::optional<double> hbm_bytes_per_s;
  if ((*model)->backend() == "cuda") {
    absl::StatusOr<double> measured = MeasureDeviceCopyBandwidth();
    if (measured.ok()) {
      hbm_bytes_per_s = *measured;
      report["hbm_copy_bytes_per_s"] = *measured;
      std::printf("device-to-device copy: %.0f GB/s (read + written), the roofline below\n", *measured / 1e9);
    } else {
      DOZE_LOG(WARNING) << "no roofline: " << measured.status();
    }
  }
  std::printf("%-8s %12s %12s %12s %14s %10s %16s\n", "batch", "step ms", "median ms", "tokens/s",
              "prefill tok/s", "roofline", "first 2 steps ms");
  for (int batch : *batches) {
    absl::StatusOr<DecodeFigures> measured = MeasureBatch(engine, rng, batch, prompt_len, gen_len, sampling);
    if (!measured.ok()) return Fail(absl::StrCat("batch ", batch, ": ", measured.status().message()));
    const DecodeFigures& f = *measured;
    double context = prompt_len + gen_len / 2.0;
    const double step_bytes = DecodeStepBytes(**model, batch, context, kv_bytes);
    json row = {{"batch", batch},
                {"step_ms", f.step_ms},
                {"median_step_ms", f.median_step_ms},
                {"max_step_ms", f.max_step_ms},
                {"tokens_per_s", f.tokens_per_s},
                {"prefill_tokens_per_s", f.prefill_tokens_per_s},
                {"first_decode_steps_ms", f.first_steps_ms},
                {"untimed_decode_steps", kUntimedDecodeSteps}};
    std::string fraction = "-";
    if (hbm_bytes_per_s.has_value()) {
      const double roofline = step_bytes / *hbm_bytes_per_s * 1e3 / f.step_ms;
      row["hbm_roofline_fraction"] = roofline;
      fraction = std::to_string(100 * roofline).substr(0, 5) + "%";
    }
    report["decode"].push_back(row);
    std::printf("%-8d %12.3f %12.3f %12.1f %14.1f %10s %16.2f\n", batch, f.step_ms, f.median_step_ms,
                f.tokens_per_s, f.prefill_tokens_per_s, fraction.c_str(), f.first_steps_ms);
  }
  for (int length : *ttft_lens) {
    absl::StatusOr<FirstTokenTimes> timed = TimeToFirstToken(engine, rng, length);
    if (!timed.ok()) return Fail(absl::StrCat("--ttft-lens ", length, ": ", timed.status().message()));
    const FirstTokenTimes& times = *timed;
    report["ttft_ms"][std::to_string(length)] = 1e3 * times.median_s;
    report["ttft_first_use_ms"][std::to_string(length)] = 1e3 * times.first_use_s;
    std::printf(
        "time to first token, %d-token prompt: %.2f ms (median of %d; the first of that length %.2f ms)\n",
        length, 1e3 * times.median_s, kTimedPrompts, 1e3 * times.first_use_s);
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  report["peak_host_rss_mb"] = usage.ru_maxrss / 1024.0;
  std::cout << report.dump() << std::endl;
  return 0;
}

}  // namespace doze::cli
