#include "worker/engine/engine.h"

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
  SchedulerOutput scheduled = scheduler_.Schedule();
  if (scheduled.empty()) return outputs;
  BuildBatch(scheduled.chunks, block_manager_.block_size(), &batch_);
  RunModelAndSample(batch_);
  scheduler_.OnStepComputed(scheduled);
  outputs.reserve(outputs.size() + samples_.size());
  for (size_t i = 0; i < samples_.size(); ++i) {
    outputs.push_back(PostProcess(*batch_.sampled_seqs[i], std::move(samples_[i])));
  }
  return outputs;
}

bool Engine::HasUnfinished() const { return scheduler_.HasUnfinished() || !pending_outputs_.empty(); }

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

void Engine::RunModelAndSample(const Batch& batch) {
  computed_tokens_ += batch.metadata.num_tokens();
  samples_.clear();  // also drops what PostProcess left in the moved-from results
  if (DeviceRows(batch, &device_rows_)) {
    SampleOnDevice(batch, device_rows_);
  } else {
    SampleOnHost(batch);
  }
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

void Engine::SampleOnDevice(const Batch& batch, absl::Span<const DeviceSamplingRow> rows) {
  absl::StatusOr<std::vector<int32_t>> tokens = runner_->ForwardAndSample(batch.metadata, rows);
  if (!tokens.ok()) DOZE_LOG(FATAL) << "model runner failed: " << tokens.status();
  DOZE_CHECK(static_cast<int>(tokens->size()) == batch.metadata.num_logits())
      << tokens->size() << " tokens for " << batch.metadata.num_logits() << " rows";
  samples_.resize(tokens->size());
  for (size_t i = 0; i < samples_.size(); ++i) samples_[i].token_id = (*tokens)[i];
}

void Engine::SampleOnHost(const Batch& batch) {
  absl::StatusOr<LogitsView> logits = runner_->Forward(batch.metadata);
  if (!logits.ok()) DOZE_LOG(FATAL) << "model runner failed: " << logits.status();
  DOZE_CHECK(logits->num_rows == batch.metadata.num_logits())
      << logits->num_rows << " rows for " << batch.metadata.num_logits();
  const int vocab_size = runner_->config().vocab_size;
  samples_.reserve(logits->num_rows);
  for (int i = 0; i < logits->num_rows; ++i) {
    samples_.push_back(
        sampler_.Sample(absl::MakeConstSpan(logits->row(i), vocab_size), *batch.sampled_seqs[i]));
  }
}

RequestOutput Engine::PostProcess(Sequence& seq, SampleResult sample) {
  Request& request = *requests_.at(seq.id());
  seq.AppendToken(sample.token_id);
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
  requests_.erase(it);
}

}  // namespace doze
