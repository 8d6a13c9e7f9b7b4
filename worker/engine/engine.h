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
  // With a runner that samples asynchronously (ModelRunner::SupportsAsyncSampling): schedule and submit the
  // next step while the device still runs the current one, its rows reading the tokens still in flight on the
  // device, so that the host's work between steps (scheduling, post-processing, the caller's) overlaps the
  // device's. Rows that finish in the step still in flight waste their slot in the next one. Only while every
  // sequence can be sampled ahead (CanSampleAhead); otherwise each step is collected before the next starts.
  bool async_scheduling = true;
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
  // a token or was aborted. A model runner failure ends the process (a broken device does not heal). With
  // async_scheduling a step may return with the next step already running on the device.
  std::vector<RequestOutput> Step();
  // Whether any request is waiting, running or has an output not yet returned, or a step is in flight.
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

  // A launched step whose tokens have not been taken yet.
  struct LaunchedStep {
    uint64_t index = 0;  // launch order, from 1
    SchedulerOutput scheduled;
    std::vector<Sequence*> sampled_seqs;  // [num_logits]
    bool on_device = false;               // its tokens come from runner_->CollectSamples()
    std::vector<SampleResult> samples;    // otherwise: sampled at launch
  };

  absl::Status CheckFits(int num_prompt_tokens, const SamplingParams& params) const;
  // Schedules a step and starts it: submitted to the device when the runner samples asynchronously and every
  // row can be sampled there, else run and sampled at once (on the device, or on the host when a row needs
  // it). nullopt when nothing is schedulable. `ahead`: a step in flight has not been collected, so every row
  // must be sampled on the device (CanRunAhead).
  std::optional<LaunchedStep> Launch(bool ahead);
  // Whether the next step may be launched before the one in flight is collected.
  bool CanRunAhead() const;
  // Fills `rows` with the device settings of every sampled row; false when the runner or any row needs the
  // host path.
  bool DeviceRows(const Batch& batch, std::vector<DeviceSamplingRow>* rows) const;
  std::vector<SampleResult> SampleOnHost(const Batch& batch);
  // After a launch, once every older step is collected: advances the scheduled sequences and gives each
  // sampled one a pending token.
  void Commit(const LaunchedStep& step);
  // Takes a step's tokens and post-processes them into `outputs`; sequences that finished meanwhile are
  // skipped. Releases the requests no step in flight can refer to any more.
  void Collect(LaunchedStep& step, std::vector<RequestOutput>& outputs);
  // Records the sampled token (already in `seq`), updates its text and finishes it when a stop rule says so.
  RequestOutput PostProcess(Sequence& seq, SampleResult sample);
  RequestOutput NewOutput(const Request& request) const;
  // Ends a request: out of the scheduler, its blocks freed, its Request kept (retired_) until no launched
  // step can refer to its sequence.
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
  std::optional<LaunchedStep> in_flight_;       // committed, not collected
  uint64_t num_launched_ = 0;
  // Finished requests and the number of steps launched when they finished: a step of a later index cannot
  // refer to them.
  std::vector<std::pair<uint64_t, std::unique_ptr<Request>>> retired_;
  // Per-step scratch, members so their memory is reused from step to step.
  Batch batch_;
  std::vector<DeviceSamplingRow> device_rows_;
  uint64_t next_id_ = 1;
  int64_t prompt_tokens_ = 0;
  int64_t generated_tokens_ = 0;
  int64_t computed_tokens_ = 0;
};

}  // namespace doze
