#include "worker/engine/engine.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "worker/common/logging.h"
#include "worker/common/status_macros.h"
#include "worker/engine/batch_builder.h"

namespace doze {
namespace {

uint64_t InitialSeed(const std::optional<uint64_t>& seed) {
  if (seed.has_value()) return *seed;
  std::random_device device;
  return (static_cast<uint64_t>(device()) << 32) ^ device();
}

}  // namespace

Engine::Engine(ModelRunner* runner, const TextDecoderFactory* text_decoders, EngineConfig config)
    : runner_(runner),
      text_decoders_(text_decoders),
      config_(std::move(config)),
      max_model_len_(config_.max_model_len > 0 ? config_.max_model_len
                                               : runner->config().max_position_embeddings),
      block_manager_(runner->num_kv_blocks(), runner->block_size()),
      scheduler_(SchedulerConfig{config_.max_num_batched_tokens, config_.max_num_seqs}, &block_manager_),
      seed_generator_(InitialSeed(config_.seed)) {
  DOZE_CHECK(max_model_len_ > 0) << "no max_model_len and no max_position_embeddings";
}

absl::Status Engine::CheckFits(int num_prompt_tokens, const SamplingParams& params) const {
  const int total = num_prompt_tokens + params.max_tokens;
  if (total > max_model_len_) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt (", num_prompt_tokens, " tokens) + max_tokens (", params.max_tokens,
                     ") = ", total, " tokens exceeds the model's context of ", max_model_len_));
  }
  const int blocks = block_manager_.BlocksFor(total);
  if (blocks > block_manager_.num_blocks()) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt (", num_prompt_tokens, " tokens) + max_tokens (", params.max_tokens,
                     ") = ", total, " tokens needs ", blocks, " KV blocks of ", block_manager_.block_size(),
                     " tokens; the KV pool has ", block_manager_.num_blocks(), " (",
                     block_manager_.num_blocks() * block_manager_.block_size(), " tokens)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> Engine::AddRequest(std::vector<int32_t> prompt_token_ids, SamplingParams params,
                                            std::string request_id) {
  const int vocab_size = runner_->config().vocab_size;
  if (prompt_token_ids.empty()) return absl::InvalidArgumentError("prompt: must hold at least one token");
  for (int32_t id : prompt_token_ids) {
    if (id < 0 || id >= vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("prompt: token id ", id, " is outside [0, ", vocab_size, ")"));
    }
  }
  RETURN_IF_ERROR(params.Validate(vocab_size));
  RETURN_IF_ERROR(CheckFits(static_cast<int>(prompt_token_ids.size()), params));
  if (params.temperature < kMinSamplingTemperature) params.temperature = 0.0f;

  const uint64_t id = next_id_++;
  const uint64_t seed = params.seed.has_value() ? *params.seed : seed_generator_();
  prompt_tokens_ += static_cast<int64_t>(prompt_token_ids.size());
  auto seq = std::make_unique<Sequence>(id, std::move(prompt_token_ids), params, seed);
  if (request_id.empty()) request_id = absl::StrCat(id);
  auto request = std::make_unique<Request>(
      Request{std::move(request_id), std::move(seq),
              OutputProcessor(params, config_.eos_token_ids, text_decoders_->NewDecoder())});
  scheduler_.Add(request->seq.get());
  requests_.emplace(id, std::move(request));
  return id;
}

void Engine::Abort(uint64_t id) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return;
  RequestOutput out = NewOutput(*it->second);
  Finish(id, FinishReason::kAbort, out);
  pending_outputs_.push_back(std::move(out));
}

std::vector<RequestOutput> Engine::Step() {
  std::vector<RequestOutput> outputs = std::exchange(pending_outputs_, {});
  if (!in_flight_.has_value()) {
    std::optional<LaunchedStep> first = Launch(/*ahead=*/false);
    if (!first.has_value()) return outputs;
    Commit(*first);
    in_flight_ = std::move(first);
  }
  // The next step starts before the one in flight is collected, its rows reading the pending tokens on the
  // device; it is committed once the tokens it read are known on the host.
  std::optional<LaunchedStep> next;
  if (CanRunAhead()) next = Launch(/*ahead=*/true);
  Collect(*in_flight_, outputs);
  in_flight_.reset();
  if (next.has_value()) {
    Commit(*next);
    in_flight_ = std::move(next);
  }
  return outputs;
}

bool Engine::HasUnfinished() const {
  return scheduler_.HasUnfinished() || !pending_outputs_.empty() || in_flight_.has_value();
}

EngineCounters Engine::counters() const {
  EngineCounters c;
  c.num_running = static_cast<int>(scheduler_.running().size());
  c.num_waiting = static_cast<int>(scheduler_.waiting().size());
  c.kv_blocks_used = block_manager_.num_used_blocks();
  c.kv_blocks_total = block_manager_.num_blocks();
  c.prefix_cache_queried_tokens = scheduler_.prefix_cache_queried_tokens();
  c.prefix_cache_hit_tokens = scheduler_.prefix_cache_hit_tokens();
  if (c.prefix_cache_queried_tokens > 0) {
    c.prefix_cache_hit_rate =
        static_cast<double>(c.prefix_cache_hit_tokens) / static_cast<double>(c.prefix_cache_queried_tokens);
  }
  c.num_preemptions = scheduler_.num_preemptions();
  c.prompt_tokens = prompt_tokens_;
  c.generated_tokens = generated_tokens_;
  c.computed_tokens = computed_tokens_;
  return c;
}

std::optional<Engine::LaunchedStep> Engine::Launch(bool ahead) {
  SchedulerOutput scheduled = scheduler_.Schedule();
  if (scheduled.empty()) return std::nullopt;
  BuildBatch(scheduled.chunks, block_manager_.block_size(), &batch_);
  computed_tokens_ += batch_.metadata.num_tokens();
  LaunchedStep step;
  step.index = ++num_launched_;
  step.scheduled = std::move(scheduled);
  step.sampled_seqs = batch_.sampled_seqs;
  const bool device = DeviceRows(batch_, &device_rows_);
  DOZE_CHECK(device || !ahead) << "a step launched ahead has a row that needs the host";
  if (device && config_.async_scheduling && runner_->SupportsAsyncSampling()) {
    const absl::Status status = runner_->SubmitForwardAndSample(batch_.metadata, device_rows_);
    if (!status.ok()) DOZE_LOG(FATAL) << "model runner failed: " << status;
    step.on_device = true;
  } else if (device) {
    absl::StatusOr<std::vector<int32_t>> tokens = runner_->ForwardAndSample(batch_.metadata, device_rows_);
    if (!tokens.ok()) DOZE_LOG(FATAL) << "model runner failed: " << tokens.status();
    for (int32_t token : *tokens) step.samples.push_back(SampleResult{token});
  } else {
    step.samples = SampleOnHost(batch_);
  }
  return step;
}

bool Engine::CanRunAhead() const {
  if (!config_.async_scheduling || !runner_->SupportsAsyncSampling() || !in_flight_->on_device) return false;
  const auto all_ahead = [](const auto& seqs) {
    return std::all_of(seqs.begin(), seqs.end(), [](const Sequence* seq) { return CanSampleAhead(*seq); });
  };
  return all_ahead(scheduler_.running()) && all_ahead(scheduler_.waiting());
}

bool Engine::DeviceRows(const Batch& batch, std::vector<DeviceSamplingRow>* rows) const {
  if (!runner_->SupportsDeviceSampling()) return false;
  rows->clear();
  for (const Sequence* seq : batch.sampled_seqs) {
    std::optional<DeviceSamplingRow> row = DeviceSamplingRowOf(*seq);
    if (!row.has_value()) return false;  // one host-only row takes the whole step to the host
    rows->push_back(std::move(*row));
  }
  return true;
}

std::vector<SampleResult> Engine::SampleOnHost(const Batch& batch) {
  absl::StatusOr<LogitsView> logits = runner_->Forward(batch.metadata);
  if (!logits.ok()) DOZE_LOG(FATAL) << "model runner failed: " << logits.status();
  DOZE_CHECK(logits->num_rows == batch.metadata.num_logits())
      << logits->num_rows << " rows for " << batch.metadata.num_logits();
  const int vocab_size = runner_->config().vocab_size;
  std::vector<SampleResult> samples;
  samples.reserve(logits->num_rows);
  for (int i = 0; i < logits->num_rows; ++i) {
    samples.push_back(
        sampler_.Sample(absl::MakeConstSpan(logits->row(i), vocab_size), *batch.sampled_seqs[i]));
  }
  return samples;
}

void Engine::Commit(const LaunchedStep& step) {
  scheduler_.OnStepComputed(step.scheduled);
  for (size_t i = 0; i < step.sampled_seqs.size(); ++i) {
    Sequence* seq = step.sampled_seqs[i];
    if (seq->status() != SequenceStatus::kFinished) seq->AppendPendingToken(static_cast<int>(i));
  }
}

void Engine::Collect(LaunchedStep& step, std::vector<RequestOutput>& outputs) {
  if (step.on_device) {
    absl::StatusOr<std::vector<int32_t>> tokens = runner_->CollectSamples();
    if (!tokens.ok()) DOZE_LOG(FATAL) << "model runner failed: " << tokens.status();
    for (int32_t token : *tokens) step.samples.push_back(SampleResult{token});
  }
  DOZE_CHECK(step.samples.size() == step.sampled_seqs.size())
      << step.samples.size() << " tokens for " << step.sampled_seqs.size() << " rows";
  outputs.reserve(outputs.size() + step.samples.size());
  for (size_t i = 0; i < step.samples.size(); ++i) {
    Sequence* seq = step.sampled_seqs[i];
    if (seq->status() == SequenceStatus::kFinished) continue;  // finished or aborted while in flight
    seq->ResolvePendingToken(step.samples[i].token_id);
    outputs.push_back(PostProcess(*seq, std::move(step.samples[i])));
  }
  // Launched steps are collected in order: none still to collect has an index at or below this one's.
  auto referenced = std::partition(retired_.begin(), retired_.end(),
                                   [&](const auto& retired) { return retired.first > step.index; });
  retired_.erase(referenced, retired_.end());
}

RequestOutput Engine::PostProcess(Sequence& seq, SampleResult sample) {
  Request& request = *requests_.at(seq.id());
  ++generated_tokens_;
  RequestOutput out = NewOutput(request);
  out.new_token_ids.push_back(sample.token_id);
  if (sample.logprobs.has_value()) out.logprobs.push_back(std::move(*sample.logprobs));
  out.prompt_top_logits = std::move(sample.top_logits);
  FinishReason reason = request.output.OnToken(seq, sample.token_id, &out.text_delta);
  if (reason != FinishReason::kNone) Finish(seq.id(), reason, out);
  return out;
}

RequestOutput Engine::NewOutput(const Request& request) const {
  RequestOutput out;
  out.id = request.seq->id();
  out.request_id = request.request_id;
  out.usage.prompt_tokens = request.seq->num_prompt_tokens();
  out.usage.completion_tokens = request.seq->num_output_tokens();
  out.usage.cached_tokens = request.seq->num_prompt_cached_tokens();
  return out;
}

void Engine::Finish(uint64_t id, FinishReason reason, RequestOutput& out) {
  auto it = requests_.find(id);
  scheduler_.Remove(it->second->seq.get());
  out.finished = true;
  out.finish_reason = reason;
  retired_.emplace_back(num_launched_, std::move(it->second));
  requests_.erase(it);
}

}  // namespace doze
