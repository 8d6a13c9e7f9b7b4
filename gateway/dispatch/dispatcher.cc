#include "gateway/dispatch/dispatcher.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "gateway/common/run_after.h"
#include "gateway/openai/api_error.h"

namespace doze::gateway {
namespace {

namespace net = boost::asio;

// Errors after which a request that saw no output may be tried again on a (restarted) worker.
bool IsRetryable(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kFailedPrecondition:
      return true;
    default:
      return false;
  }
}

}  // namespace

// Bridges one worker call to the request's sink and back to the dispatcher.
class Dispatcher::CallObserver : public GenerateObserver {
 public:
  CallObserver(std::shared_ptr<Dispatcher> dispatcher, std::shared_ptr<PendingRequest> request,
               std::weak_ptr<WorkerClient> client)
      : dispatcher_(std::move(dispatcher)), request_(std::move(request)), client_(std::move(client)) {}

  void OnResponse(const v1::GenerateResponse& response,
                  std::chrono::steady_clock::time_point read_at) override {
    // Called on the thread that took the response off the completion queue; a streamed response has been
    // written to the client's socket (or handed to the connection's asynchronous write) when the sink
    // returns.
    GenerationSink* sink = request_->sink();
    const bool streams = sink->streams();
    responded_ = true;
    tokens_out_ += response.token_ids_size();
    if (request_->TakeFirstResponse()) {
      absl::Time now = dispatcher_->clock_->Now();
      dispatcher_->metrics_->time_to_first_token().Observe(absl::ToDoubleSeconds(now - request_->arrival()));
    }
    // A whole answer's output reaches the client only at its end: until then a retry is invisible to it.
    if (streams && (!response.text_delta().empty() || response.token_ids_size() > 0)) {
      request_->MarkStarted();
    }
    if (response.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
      finished_ = true;
      dispatcher_->metrics_->CountRequest(200);
      dispatcher_->metrics_->AddTokens(response.usage().prompt_tokens(),
                                       response.usage().completion_tokens());
      double gateway_s = absl::ToDoubleSeconds(dispatcher_->clock_->Now() - request_->arrival()) -
                         response.timings().total_ms() / 1000.0;
      dispatcher_->metrics_->gateway_overhead().Observe(std::max(0.0, gateway_s));
    }
    sink->OnResponse(response);
    // Streamed messages only, from the read of the worker's message that carried it: the events of that
    // message handed out before this one count too.
    if (streams) {
      dispatcher_->metrics_->stream_message_gateway().Observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - read_at).count());
    }
  }

  void OnDone(const absl::Status& status) override {
    // A call that ended before its last response (its client left, its worker failed) still cost the
    // worker its prompt and the tokens it sent: counted as the usage of a finished one would be.
    if (!finished_ && responded_) {
      dispatcher_->metrics_->AddTokens(request_->request().token_ids().ids_size(), tokens_out_);
    }
    dispatcher_->OnCallDone(request_, status, finished_, client_);
  }

 private:
  std::shared_ptr<Dispatcher> dispatcher_;
  std::shared_ptr<PendingRequest> request_;
  std::weak_ptr<WorkerClient> client_;  // the worker the call runs on
  bool finished_ = false;
  bool responded_ = false;  // the worker sent at least one response: it has taken the prompt
  int64_t tokens_out_ = 0;  // new tokens in the responses so far
};

Dispatcher::Dispatcher(DispatcherOptions options, std::shared_ptr<WorkerSupervisor> supervisor,
                       std::shared_ptr<FunctionMetrics> metrics, Clock* clock, net::any_io_executor executor)
    : function_(options.function),
      supervisor_(std::move(supervisor)),
      metrics_(std::move(metrics)),
      clock_(clock),
      executor_(std::move(executor)),
      queue_(options.max_queue),
      max_in_flight_(options.max_in_flight),
      queue_timeout_(options.queue_timeout),
      suspect_recheck_(options.suspect_recheck),
      unresponsive_timeout_(options.unresponsive_timeout),
      liveness_check_(options.liveness_check) {
  last_activity_ = clock_->Now();
}

void Dispatcher::Init() {
  std::weak_ptr<Dispatcher> weak = shared_from_this();
  supervisor_->AddObserver([weak](const WorkerTransition& transition) {
    if (std::shared_ptr<Dispatcher> self = weak.lock()) self->OnTransition(transition);
  });
}

absl::Status Dispatcher::Submit(std::shared_ptr<PendingRequest> request) {
  {
    absl::MutexLock lock(&mu_);
    last_activity_ = clock_->Now();
    if (closed_.has_value()) {
      metrics_->CountRequest(HttpStatusOf(*closed_));
      return *closed_;
    }
  }
  if (listener_ != nullptr) {
    absl::Status admitted = listener_->OnQueued(function_);
    if (!admitted.ok()) {
      metrics_->CountRequest(HttpStatusOf(admitted));
      return admitted;
    }
  }
  absl::Status pushed = queue_.Push(request);
  if (!pushed.ok()) {
    Abandoned();
    metrics_->CountRequest(503);
    return WithRetryAfter(std::move(pushed), absl::Seconds(1));
  }
  // Closed between the check above and the push: Close's FailQueued may have missed this one.
  if (std::optional<absl::Status> closed = ClosedStatus();
      closed.has_value() && queue_.Remove(request.get())) {
    Abandoned();
    metrics_->CountRequest(HttpStatusOf(*closed));
    return *closed;
  }
  std::weak_ptr<Dispatcher> weak = shared_from_this();
  request->SetCancelHook([weak, raw = request.get()] {
    std::shared_ptr<Dispatcher> self = weak.lock();
    if (self && self->queue_.Remove(raw)) {
      self->DisarmTimer(raw);
      self->Abandoned();
      self->metrics_->CountRequest(499);
    }
  });
  Pump();
  ArmTimerIfQueued(request);
  return absl::OkStatus();
}

void Dispatcher::ArmTimerIfQueued(const std::shared_ptr<PendingRequest>& request) {
  // Pump takes requests off the queue under mu_, so a request found queued here has its timer disarmed by
  // whichever Pump takes it later. Most requests go to the worker at once and never need one.
  absl::MutexLock lock(&mu_);
  if (!queue_.Contains(request.get())) return;
  auto timer = std::make_shared<net::steady_timer>(executor_, absl::ToChronoNanoseconds(queue_timeout_));
  std::weak_ptr<Dispatcher> weak = shared_from_this();
  timer->async_wait([weak, request](boost::system::error_code error) {
    std::shared_ptr<Dispatcher> self = weak.lock();
    if (!error && self) self->OnQueueTimeout(request);
  });
  timers_[request.get()] = std::move(timer);
}

void Dispatcher::DisarmTimer(const PendingRequest* request) {
  absl::MutexLock lock(&mu_);
  auto it = timers_.find(request);
  if (it == timers_.end()) return;
  it->second->cancel();
  timers_.erase(it);
}

void Dispatcher::OnQueueTimeout(const std::shared_ptr<PendingRequest>& request) {
  {
    absl::MutexLock lock(&mu_);
    timers_.erase(request.get());
  }
  if (!queue_.Remove(request.get())) return;
  Abandoned();
  WorkerSnapshot worker = supervisor_->snapshot();
  // A ready worker means the request waited for one of the function's max_in_flight places.
  std::string reason =
      worker.state == WorkerState::kReady
          ? absl::StrCat("the request waited in ", function_, "'s queue past queue_timeout for a place ",
                         "among the requests in flight (its worker is ready and busy)")
          : absl::StrCat("no worker for ", function_, " became ready in time (worker ",
                         WorkerStateName(worker.state), ")");
  if (!worker.last_error.empty()) absl::StrAppend(&reason, "; last error: ", worker.last_error);
  Reject(request, WithRetryAfter(absl::UnavailableError(reason), absl::Seconds(5)));
}

void Dispatcher::Reject(const std::shared_ptr<PendingRequest>& request, const absl::Status& status) {
  if (request->sink()->answer_started()) {
    // The client has its 200: the stream ends with an error event, counted beside the status.
    metrics_->CountRequest(200);
    metrics_->CountStreamError();
  } else {
    metrics_->CountRequest(HttpStatusOf(status));
  }
  request->sink()->OnError(status);
}

void Dispatcher::Abandoned() {
  if (listener_ != nullptr) listener_->OnAbandoned(function_);
}

void Dispatcher::OnTransition(const WorkerTransition& transition) {
  if (transition.to == WorkerState::kReady) return Pump();
  if (transition.to == WorkerState::kFailed && transition.from == WorkerState::kStarting) {
    WorkerSnapshot worker = supervisor_->snapshot();
    absl::Status status =
        WithRetryAfter(absl::UnavailableError(transition.reason),
                       std::max(absl::Seconds(1), worker.next_start_allowed - clock_->Now()));
    FailQueued(status);
    return;
  }
  if ((transition.to == WorkerState::kFailed || transition.to == WorkerState::kStopped) &&
      queue_.size() > 0 && listener_ == nullptr) {
    supervisor_->EnsureReady("requests are waiting");
  }
}

void Dispatcher::Pump() {
  std::shared_ptr<WorkerClient> client = supervisor_->ready_client();
  if (!client) {
    if (queue_.size() > 0 && listener_ == nullptr) supervisor_->EnsureReady("a request is waiting");
    return;
  }
  if (listener_ != nullptr && !listener_->CanDispatch(function_)) return;
  if (HoldForSuspect(client)) return;
  int abandoned = 0;
  std::vector<std::shared_ptr<PendingRequest>> batch;
  bool arm_liveness = false;
  {
    absl::MutexLock lock(&mu_);
    while (in_flight_ < max_in_flight_) {
      std::shared_ptr<PendingRequest> request = queue_.Pop();
      if (!request) break;
      auto timer = timers_.find(request.get());
      if (timer != timers_.end()) {
        timer->second->cancel();
        timers_.erase(timer);
      }
      if (request->cancelled()) {
        ++abandoned;
        continue;
      }
      ++in_flight_;
      batch.push_back(std::move(request));
    }
    arm_liveness = ClaimLivenessTimerLocked();
  }
  for (int i = 0; i < abandoned; ++i) Abandoned();
  for (std::shared_ptr<PendingRequest>& request : batch) StartCall(std::move(request), client);
  if (arm_liveness) StartLivenessTimer();
}

void Dispatcher::StartCall(std::shared_ptr<PendingRequest> request,
                           const std::shared_ptr<WorkerClient>& client) {
  if (listener_ != nullptr) listener_->OnStarted(function_, request->arrival());
  if (request->attempts() == 0) {
    request->set_dispatched(clock_->Now());
    metrics_->queue_wait().Observe(absl::ToDoubleSeconds(request->dispatched() - request->arrival()));
  }
  request->AddAttempt();
  auto observer = std::make_shared<CallObserver>(shared_from_this(), request, client);
  std::shared_ptr<GenerateCall> call = client->Generate(request->request(), observer);
  // The hook holds the call weakly: the call may already have ended (OnCallDone, on a gRPC thread, clearing
  // the hook) before this line runs, and a strong hook set then would keep the call, its observer, this
  // request and its HTTP session alive for good. A call in flight keeps itself alive (GenerateCall).
  request->SetCancelHook([weak = std::weak_ptr<GenerateCall>(call)] {
    if (std::shared_ptr<GenerateCall> live = weak.lock()) live->Cancel();
  });
}

void Dispatcher::OnCallDone(std::shared_ptr<PendingRequest> request, const absl::Status& status,
                            bool finished, const std::weak_ptr<WorkerClient>& client) {
  request->ClearCancelHook();
  const bool broken = !finished && !request->cancelled() && IsRetryable(status);
  const std::shared_ptr<WorkerClient> broken_on = broken ? client.lock() : nullptr;  // released unlocked
  {
    absl::MutexLock lock(&mu_);
    --in_flight_;
    last_activity_ = clock_->Now();
    if (broken && !SameWorker(suspect_, broken_on)) suspect_ = client;
  }
  if (listener_ != nullptr) listener_->OnFinished(function_);
  if (finished) {
    // Counted when the last response passed through, before the client could see it.
  } else if (request->cancelled()) {
    metrics_->CountRequest(499);
  } else if (!request->started() && request->attempts() < 2 && broken) {
    // A retry goes back to the queue, unless nothing will serve the queue again.
    std::optional<absl::Status> closed = ClosedStatus();
    absl::Status admitted = closed.has_value()     ? *closed
                            : listener_ != nullptr ? listener_->OnQueued(function_)
                                                   : absl::OkStatus();
    if (!admitted.ok()) {
      Reject(request, admitted);
      return Pump();
    }
    request->sink()->Restart();
    queue_.PushFront(request);
    ArmTimerIfQueued(request);
  } else if (status.code() == absl::StatusCode::kInvalidArgument) {
    Reject(request, status);
  } else if (std::optional<absl::Status> closed = ClosedStatus(); closed.has_value()) {
    // Its worker was stopped because nothing will serve the function again: the gateway's shutdown past its
    // grace, or the function removed. That, not the broken stream, is what the client is told.
    Reject(request,
           absl::UnavailableError(absl::StrCat("worker for ", function_, " stopped: ", closed->message())));
  } else {
    std::string why =
        status.ok() ? "the worker ended the stream without finishing" : std::string(status.message());
    Reject(request, absl::UnavailableError(absl::StrCat("worker for ", function_, " failed: ", why)));
  }
  Pump();
}

bool Dispatcher::HoldForSuspect(const std::shared_ptr<WorkerClient>& client) {
  {
    absl::MutexLock lock(&mu_);
    if (!SameWorker(suspect_, client)) return false;
    if (queue_.size() == 0 || checking_suspect_) return true;
    checking_suspect_ = true;
  }
  std::weak_ptr<Dispatcher> weak = shared_from_this();
  client->CheckHealth(absl::Seconds(1), [weak, checked = std::weak_ptr<WorkerClient>(client)](bool serving) {
    if (std::shared_ptr<Dispatcher> self = weak.lock()) self->OnSuspectChecked(checked.lock(), serving);
  });
  return true;
}

void Dispatcher::OnSuspectChecked(const std::shared_ptr<WorkerClient>& client, bool serving) {
  absl::Duration recheck;
  bool held = false;
  {
    absl::MutexLock lock(&mu_);
    checking_suspect_ = false;
    // A worker replaced meanwhile (client gone) holds nothing: the next Pump goes to its successor.
    held = client != nullptr && SameWorker(suspect_, client);
    if (held && serving) suspect_.reset();
    recheck = suspect_recheck_;
  }
  if (client != nullptr) KillIfUnresponsive(client, serving, "a call broke and its health checks failed");
  if (!held || serving) return Pump();
  // Still suspect: asked again while requests wait (Pump), unless the supervisor replaces the worker first.
  RunAfter(executor_, recheck, [self = shared_from_this()] { self->Pump(); });
}

void Dispatcher::KillIfUnresponsive(const std::shared_ptr<WorkerClient>& client, bool serving,
                                    const char* why) {
  absl::Duration failing;
  {
    absl::MutexLock lock(&mu_);
    failing = failing_checks_.Record(client, serving, clock_->Now());
    if (serving || failing < unresponsive_timeout_) return;
  }
  // The supervisor kills it and announces the failure; its successor is another client.
  supervisor_->FailUnresponsive(
      client, absl::StrCat("worker stopped answering: ", why, " for ",
                           absl::FormatDuration(absl::Trunc(failing, absl::Milliseconds(100)))));
}

bool Dispatcher::ClaimLivenessTimerLocked() {
  if (liveness_armed_ || in_flight_ == 0) return false;
  liveness_armed_ = true;
  return true;
}

void Dispatcher::StartLivenessTimer() {
  RunAfter(executor_, liveness_check_, [weak = weak_from_this()] {
    if (std::shared_ptr<Dispatcher> self = weak.lock()) self->CheckLiveness();
  });
}

void Dispatcher::CheckLiveness() {
  std::shared_ptr<WorkerClient> client = supervisor_->ready_client();
  if (client == nullptr) return LivenessChecked();  // starting, failed or stopping: the supervisor watches
  std::weak_ptr<Dispatcher> weak = shared_from_this();
  client->CheckHealth(absl::Seconds(1), [weak, checked = std::weak_ptr<WorkerClient>(client)](bool serving) {
    std::shared_ptr<Dispatcher> self = weak.lock();
    if (!self) return;
    if (std::shared_ptr<WorkerClient> live = checked.lock()) {
      self->KillIfUnresponsive(live, serving, "its health checks failed with calls in flight");
    }
    self->LivenessChecked();
  });
}

void Dispatcher::LivenessChecked() {
  bool again = false;
  {
    absl::MutexLock lock(&mu_);
    liveness_armed_ = false;
    again = ClaimLivenessTimerLocked();
  }
  if (again) StartLivenessTimer();
}

int Dispatcher::in_flight() const {
  absl::MutexLock lock(&mu_);
  return in_flight_;
}

absl::Time Dispatcher::last_activity() const {
  absl::MutexLock lock(&mu_);
  return last_activity_;
}

void Dispatcher::UpdateOptions(int max_queue, int max_in_flight, absl::Duration queue_timeout,
                               absl::Duration unresponsive_timeout) {
  queue_.set_max_size(max_queue);
  {
    absl::MutexLock lock(&mu_);
    max_in_flight_ = max_in_flight;
    queue_timeout_ = queue_timeout;
    unresponsive_timeout_ = unresponsive_timeout;
  }
  Pump();
}

void Dispatcher::Close(const absl::Status& status) {
  {
    absl::MutexLock lock(&mu_);
    closed_ = status;
  }
  FailQueued(status);
}

std::optional<absl::Status> Dispatcher::ClosedStatus() const {
  absl::MutexLock lock(&mu_);
  return closed_;
}

void Dispatcher::FailQueued(const absl::Status& status) {
  for (const std::shared_ptr<PendingRequest>& request : queue_.TakeAll()) {
    DisarmTimer(request.get());
    Abandoned();
    Reject(request, status);
  }
}

}  // namespace doze::gateway
