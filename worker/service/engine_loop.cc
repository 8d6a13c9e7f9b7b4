#include "worker/service/engine_loop.h"

#include <future>
#include <utility>

#include "worker/common/logging.h"

namespace doze::service {
namespace {

// Adds the running totals of `from` into `to` (queue and KV figures are not totals and are left alone).
void AddTotals(const EngineCounters& from, EngineCounters& to) {
  to.prefix_cache_queried_tokens += from.prefix_cache_queried_tokens;
  to.prefix_cache_hit_tokens += from.prefix_cache_hit_tokens;
  to.num_preemptions += from.num_preemptions;
  to.prompt_tokens += from.prompt_tokens;
  to.generated_tokens += from.generated_tokens;
  to.computed_tokens += from.computed_tokens;
}

}  // namespace

EngineLoop::~EngineLoop() { Stop(); }

absl::Status EngineLoop::Start(EngineInit init) {
  std::promise<absl::Status> started;
  std::future<absl::Status> result = started.get_future();
  thread_ = std::thread([this, init = std::move(init), started = std::move(started)]() mutable {
    absl::Status status = Initialize(init);
    const bool ok = status.ok();
    started.set_value(std::move(status));
    if (ok) Run();
  });
  absl::Status status = result.get();
  if (!status.ok()) thread_.join();
  return status;
}

absl::Status EngineLoop::Initialize(EngineInit& init) {
  absl::StatusOr<EngineParts> parts = init();
  if (!parts.ok()) return parts.status();
  parts_ = *std::move(parts);
  engine_ = parts_.make_engine();
  max_model_len_ = engine_->max_model_len();
  vocab_size_ = parts_.runner->config().vocab_size;
  WarmUp();
  Publish();
  return absl::OkStatus();
}

void EngineLoop::WarmUp() {
  // One token in, one out: the first Forward pays for lazy set-up (allocations, kernels, caches) before the
  // worker says SERVING. A single-token prompt fills no KV block, so nothing stays in the prefix cache.
  SamplingParams params;
  params.temperature = 0.0f;
  params.max_tokens = 1;
  params.ignore_eos = true;
  absl::StatusOr<uint64_t> id = engine_->AddRequest({0}, params, "warm-up");
  DOZE_CHECK(id.ok()) << "warm-up request refused: " << id.status();
  while (engine_->HasUnfinished()) engine_->Step();
}

uint64_t EngineLoop::Submit(EngineRequest request) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t handle = next_handle_++;
  inbox_.requests.emplace_back(handle, std::move(request));
  wake_up_.notify_one();
  return handle;
}

void EngineLoop::Cancel(uint64_t handle) {
  std::lock_guard<std::mutex> lock(mu_);
  inbox_.cancels.push_back(handle);
  wake_up_.notify_one();
}

void EngineLoop::Sleep(Done done) {
  std::lock_guard<std::mutex> lock(mu_);
  inbox_.commands.push_back(Command{CommandKind::kSleep, std::move(done)});
  wake_up_.notify_one();
}

void EngineLoop::Wake(Done done) {
  std::lock_guard<std::mutex> lock(mu_);
  inbox_.commands.push_back(Command{CommandKind::kWake, std::move(done)});
  wake_up_.notify_one();
}

EngineStats EngineLoop::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return published_;
}

void EngineLoop::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    wake_up_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
}

void EngineLoop::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    const bool busy = (engine_ && engine_->HasUnfinished()) || !deferred_commands_.empty();
    if (step_watchdog_ != nullptr) step_watchdog_->TurnEnded();
    wake_up_.wait(lock, [&] {
      return stop_ || busy || !inbox_.requests.empty() || !inbox_.cancels.empty() || !inbox_.commands.empty();
    });
    if (stop_) break;
    // Everything up to the next wait is watched: the admissions, the step, the outputs' hand-over (a call's
    // sink runs here), sleep and wake.
    if (step_watchdog_ != nullptr) step_watchdog_->TurnStarted();
    Inbox inbox = std::exchange(inbox_, {});
    lock.unlock();
    Admit(inbox.requests);
    ApplyCancels(inbox.cancels);
    if (engine_ && engine_->HasUnfinished()) {
      std::vector<RequestOutput> outputs = engine_->Step();
      // Published before the outputs leave: a client that has seen a token sees the step's KV use in Stats.
      Publish();
      Dispatch(std::move(outputs));
    }
    for (Command& command : inbox.commands) deferred_commands_.push_back(std::move(command));
    // Sleep and wake wait for the engine to be idle: an aborted request may still owe its last output.
    while (!deferred_commands_.empty() && !(engine_ && engine_->HasUnfinished())) {
      Command command = std::move(deferred_commands_.front());
      deferred_commands_.erase(deferred_commands_.begin());
      RunCommand(command);
    }
    Publish();
    lock.lock();
  }
  lock.unlock();
  ReleaseAll();
}

void EngineLoop::Admit(std::vector<std::pair<uint64_t, EngineRequest>>& requests) {
  for (auto& [handle, request] : requests) {
    RequestSink* sink = request.sink;
    if (!engine_) {
      sink->OnError(absl::FailedPreconditionError("the worker is sleeping; call Wake first"));
      sink->Release();
      continue;
    }
    absl::StatusOr<uint64_t> id = engine_->AddRequest(
        std::move(request.prompt_token_ids), std::move(request.params), std::move(request.request_id));
    if (!id.ok()) {
      sink->OnError(id.status());
      sink->Release();
      continue;
    }
    ++num_requests_;
    engine_id_of_handle_[handle] = *id;
    admitted_[*id] = Admitted{handle, sink};
    sink->OnAdmitted();
  }
}

void EngineLoop::ApplyCancels(const std::vector<uint64_t>& handles) {
  for (uint64_t handle : handles) {
    auto it = engine_id_of_handle_.find(handle);
    if (it != engine_id_of_handle_.end() && engine_) engine_->Abort(it->second);
  }
}

void EngineLoop::Dispatch(std::vector<RequestOutput> outputs) {
  for (RequestOutput& output : outputs) {
    auto it = admitted_.find(output.id);
    if (it == admitted_.end()) continue;  // the warm-up request
    Admitted admitted = it->second;
    stepped_.push_back(admitted.sink);  // had an output in this step
    if (output.finished) {
      if (output.finish_reason == FinishReason::kAbort) ++num_aborted_;
      finished_.push_back(admitted.sink);  // and it was its last
      engine_id_of_handle_.erase(admitted.handle);
      admitted_.erase(it);
    }
    admitted.sink->OnOutput(std::move(output));
  }
  // The step's end before the releases: a sink may go once released.
  for (RequestSink* sink : stepped_) sink->OnStepEnd();
  for (RequestSink* sink : finished_) sink->Release();
  stepped_.clear();  // their capacity stays for the next step
  finished_.clear();
}

void EngineLoop::RunCommand(Command& command) {
  if (command.kind == CommandKind::kSleep) {
    if (!engine_) return command.done(absl::OkStatus());
    absl::Status status = parts_.runner->Sleep();
    if (status.ok()) {
      AddTotals(engine_->counters(), retired_);
      engine_.reset();
    }
    return command.done(status);
  }
  if (engine_) return command.done(absl::OkStatus());
  absl::Status status = parts_.runner->Wake();
  // A device that cannot take its weights back does not heal; the gateway starts a fresh worker.
  if (!status.ok()) {
    DOZE_LOG(FATAL) << "wake failed: " << status;
  }
  engine_ = parts_.make_engine();
  command.done(absl::OkStatus());
}

void EngineLoop::ReleaseAll() {
  for (auto& [id, admitted] : admitted_) {
    admitted.sink->OnError(absl::UnavailableError("the worker stopped"));
    admitted.sink->Release();
  }
  admitted_.clear();
  engine_id_of_handle_.clear();
  Inbox inbox;
  {
    std::lock_guard<std::mutex> lock(mu_);
    inbox = std::exchange(inbox_, {});
  }
  for (auto& [handle, request] : inbox.requests) {
    request.sink->OnError(absl::UnavailableError("the worker stopped"));
    request.sink->Release();
  }
  for (Command& command : inbox.commands) command.done(absl::UnavailableError("the worker stopped"));
  for (Command& command : deferred_commands_) command.done(absl::UnavailableError("the worker stopped"));
  deferred_commands_.clear();
}

void EngineLoop::Publish() {
  EngineStats stats = CurrentStats();
  std::lock_guard<std::mutex> lock(mu_);
  published_ = stats;
}

EngineStats EngineLoop::CurrentStats() const {
  EngineStats stats;
  stats.num_requests = num_requests_;
  stats.num_aborted = num_aborted_;
  if (engine_) stats.counters = engine_->counters();
  AddTotals(retired_, stats.counters);
  const int64_t queried = stats.counters.prefix_cache_queried_tokens;
  stats.counters.prefix_cache_hit_rate =
      queried > 0 ? static_cast<double>(stats.counters.prefix_cache_hit_tokens) / static_cast<double>(queried)
                  : 0.0;
  return stats;
}

}  // namespace doze::service
