// The serving loop of one model: requests in, one step of continuous batching at a time, outputs out.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "worker/engine/batch_builder.h"
#include "worker/engine/block_manager.h"
#include "worker/engine/model_runner.h"
#include "worker/engine/output_processor.h"
#include "worker/engine/request_output.h"
#include "worker/engine/sampler.h"
#include "worker/engine/scheduler.h"
#include "worker/engine/text_decoder.h"

namespace doze {

struct EngineConfig {
  // Tokens run through the model in one step, all sequences together.
  int max_num_batched_tokens = 8192;
  // Sequences running at once.
  int max_num_seqs = 64;
  // Longest prompt + max_tokens; 0 takes the model's max_position_embeddings.
  int max_model_len = 0;
  // The model's end-of-sequence ids (generation_config.json), honoured unless a request sets ignore_eos.
  std::vector<int32_t> eos_token_ids;
  // Seeds the generator that gives unseeded requests their seeds; unset: std::random_device.
  std::optional<uint64_t> seed;
};

// A snapshot of the engine's state and totals since it started.
struct EngineCounters {
  int num_running = 0;
  int num_waiting = 0;  // preempted sequences included
  int kv_blocks_used = 0;
  int kv_blocks_total = 0;
  int64_t prefix_cache_queried_tokens = 0;
  int64_t prefix_cache_hit_tokens = 0;
  double prefix_cache_hit_rate = 0.0;  // hit / queried tokens, 0 before any query
  int64_t num_preemptions = 0;
  int64_t prompt_tokens = 0;     // of the requests added
  int64_t generated_tokens = 0;  // sampled
  int64_t computed_tokens = 0;   // run through the model (prefill chunks, decodes and recomputation)
};

// Owns the requests, the scheduler and the KV block bookkeeping; the runner owns the KV memory. Not
// thread-safe: one engine thread calls everything.
class Engine {
 public:
  // `runner` and `text_decoders` must outlive the engine.
  Engine(ModelRunner* runner, const TextDecoderFactory* text_decoders, EngineConfig config);

  // Queues a request and returns its id. InvalidArgument, naming the field, when the parameters are out of
  // range or when prompt + max_tokens can never fit the model's context or the KV pool.
  absl::StatusOr<uint64_t> AddRequest(std::vector<int32_t> prompt_token_ids, SamplingParams params,
                                      std::string request_id = "");
  // Ends a request now and frees its KV blocks; the next Step reports it finished with reason "abort".
  // Unknown or finished ids are ignored.
  void Abort(uint64_t id);
  // Runs one step: schedule, run the model, sample, post-process. Returns one output per request that sampled
  // a token or was aborted. A model runner failure ends the process (a broken device does not heal).
  std::vector<RequestOutput> Step();
  // Whether any request is waiting, running or has an output not yet returned.
  bool HasUnfinished() const;
  // Queue lengths, KV usage and totals.
  EngineCounters counters() const;
  // Longest prompt + max_tokens accepted.
  int max_model_len() const { return max_model_len_; }

 private:
  struct Request {
    std::string request_id;
    std::unique_ptr<Sequence> seq;
    OutputProcessor output;
  };

  absl::Status CheckFits(int num_prompt_tokens, const SamplingParams& params) const;
  // Runs the model over `batch` and picks each logits row's token into samples_: on the device when the
  // runner can and every row allows it (DeviceRows), else with the host Sampler. A runner failure ends the
  // process.
  void RunModelAndSample(const Batch& batch);
  // Fills `rows` with the device settings of every sampled row; false when the runner or any row needs the
  // host path.
  bool DeviceRows(const Batch& batch, std::vector<DeviceSamplingRow>* rows) const;
  void SampleOnDevice(const Batch& batch, absl::Span<const DeviceSamplingRow> rows);
  void SampleOnHost(const Batch& batch);
  // Appends the sampled token to `seq`, updates its text and finishes it when a stop rule says so.
  RequestOutput PostProcess(Sequence& seq, SampleResult sample);
  RequestOutput NewOutput(const Request& request) const;
  void Finish(uint64_t id, FinishReason reason, RequestOutput& out);

  ModelRunner* runner_;
  const TextDecoderFactory* text_decoders_;
  EngineConfig config_;
  int max_model_len_;
  BlockManager block_manager_;
  Scheduler scheduler_;
  Sampler sampler_;
  std::mt19937_64 seed_generator_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Request>> requests_;
  std::vector<RequestOutput> pending_outputs_;  // aborts, reported by the next Step
  // Per-step scratch, members so their memory is reused from step to step.
  Batch batch_;
  std::vector<DeviceSamplingRow> device_rows_;
  std::vector<SampleResult> samples_;  // [num_logits]
  uint64_t next_id_ = 1;
  int64_t prompt_tokens_ = 0;
  int64_t generated_tokens_ = 0;
  int64_t computed_tokens_ = 0;
};

}  // namespace doze
