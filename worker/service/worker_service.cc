#include "worker/service/worker_service.h"

#include <chrono>
#include <memory>
#include <utility>

namespace doze::service {
namespace {

using Clock = std::chrono::steady_clock;

double MillisSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

v1::WorkerState StateToProto(WorkerState state) {
  switch (state) {
    case WorkerState::kLoading:
      return v1::WORKER_STATE_LOADING;
    case WorkerState::kServing:
      return v1::WORKER_STATE_SERVING;
    case WorkerState::kSleeping:
      return v1::WORKER_STATE_SLEEPING;
    case WorkerState::kDraining:
      return v1::WORKER_STATE_DRAINING;
  }
  return v1::WORKER_STATE_UNSPECIFIED;
}

void CountersToProto(const EngineStats& stats, v1::StatsResponse* out) {
  const EngineCounters& c = stats.counters;
  v1::EngineCounters* counters = out->mutable_counters();
  counters->set_num_running(c.num_running);
  counters->set_num_waiting(c.num_waiting);
  counters->set_prefix_cache_queried_tokens(c.prefix_cache_queried_tokens);
  counters->set_prefix_cache_hit_tokens(c.prefix_cache_hit_tokens);
  counters->set_prefix_cache_hit_rate(c.prefix_cache_hit_rate);
  counters->set_num_preemptions(c.num_preemptions);
  counters->set_prompt_tokens(c.prompt_tokens);
  counters->set_generated_tokens(c.generated_tokens);
  counters->set_computed_tokens(c.computed_tokens);
  counters->set_num_requests(stats.num_requests);
  counters->set_num_aborted(stats.num_aborted);
  v1::KvCacheUsage* kv = out->mutable_kv_cache();
  kv->set_blocks_used(c.kv_blocks_used);
  kv->set_blocks_total(c.kv_blocks_total);
  kv->set_usage(c.kv_blocks_total > 0 ? static_cast<double>(c.kv_blocks_used) / c.kv_blocks_total : 0.0);
}

// Answers a Drain once no call is open; the process may shut down only after the answer is out (OnDone), or
// the server's shutdown would wait for this very call.
class DrainCall : public grpc::ServerUnaryReactor {
 public:
  explicit DrainCall(std::function<void()> on_drained) : on_drained_(std::move(on_drained)) {}

  void OnDone() override {
    std::function<void()> on_drained = std::move(on_drained_);
    delete this;
    on_drained();
  }

 private:
  std::function<void()> on_drained_;
};

}  // namespace

WorkerService::WorkerService(WorkerLifecycle* lifecycle, const StartupTimeline* timeline,
                             std::function<void()> on_drained)
    : lifecycle_(lifecycle), timeline_(timeline), on_drained_(std::move(on_drained)) {}

void WorkerService::SetModel(EngineLoop* loop, const WorkerModel* model, WorkerInfo info) {
  std::lock_guard<std::mutex> lock(mu_);
  loop_ = loop;
  model_ = model;
  info_ = std::move(info);
}

GenerateDeps WorkerService::deps() const {
  std::lock_guard<std::mutex> lock(mu_);
  return GenerateDeps{lifecycle_, loop_, model_};
}

grpc::ServerWriteReactor<v1::GenerateResponse>* WorkerService::Generate(grpc::CallbackServerContext*,
                                                                        const v1::GenerateRequest* request) {
  return new GenerateCall(deps(), *request);
}

grpc::ServerBidiReactor<v1::GenerateStreamRequest, v1::GenerateStreamResponse>* WorkerService::GenerateStream(
    grpc::CallbackServerContext*) {
  return new GenerateStreamCall([this] { return deps(); });
}

grpc::ServerUnaryReactor* WorkerService::Stats(grpc::CallbackServerContext* context, const v1::StatsRequest*,
                                               v1::StatsResponse* response) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    response->set_function(info_.function);
    response->set_model(info_.model_dir);
    response->set_backend(info_.backend);
    if (loop_ != nullptr) {
      CountersToProto(loop_->stats(), response);
      response->set_max_model_len(loop_->max_model_len());
    }
  }
  response->set_state(StateToProto(lifecycle_->state()));
  response->set_num_active_calls(lifecycle_->num_open_calls());
  timeline_->ToProto(response->mutable_startup());
  response->set_uptime_ms(timeline_->NowMs());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* WorkerService::Sleep(grpc::CallbackServerContext* context, const v1::SleepRequest*,
                                               v1::SleepResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  EngineLoop* loop = deps().loop;
  WorkerLifecycle* lifecycle = lifecycle_;
  absl::Status status = lifecycle->BeginSleep([reactor, loop, lifecycle, response] {
    const Clock::time_point start = Clock::now();
    loop->Sleep([reactor, lifecycle, response, start](absl::Status slept) {
      lifecycle->EndSleep(slept);
      response->set_sleep_ms(MillisSince(start));
      reactor->Finish(ToGrpcStatus(slept));
    });
  });
  if (!status.ok()) reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* WorkerService::Wake(grpc::CallbackServerContext* context, const v1::WakeRequest*,
                                              v1::WakeResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status = lifecycle_->BeginWake();
  if (!status.ok()) {
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  }
  const Clock::time_point start = Clock::now();
  WorkerLifecycle* lifecycle = lifecycle_;
  deps().loop->Wake([reactor, lifecycle, response, start](absl::Status woke) {
    lifecycle->EndWake();
    response->set_wake_ms(MillisSince(start));
    reactor->Finish(ToGrpcStatus(woke));
  });
  return reactor;
}

grpc::ServerUnaryReactor* WorkerService::Drain(grpc::CallbackServerContext*, const v1::DrainRequest*,
                                               v1::DrainResponse* response) {
  response->set_num_drained(lifecycle_->num_open_calls());
  auto* call = new DrainCall(on_drained_);
  lifecycle_->BeginDrain([call] { call->Finish(grpc::Status::OK); });
  return call;
}

}  // namespace doze::service
