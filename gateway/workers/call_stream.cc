#include "gateway/workers/call_stream.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace doze::gateway {
namespace {

absl::Status FromProto(const v1::CallStatus& status) {
  if (status.code() == 0) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.code()), status.message());
}

}  // namespace

// One call on the stream. Held by the stream while open; holds the stream weakly (for Cancel), so that a
// call the dispatcher keeps does not keep a dead stream.
class CallStream::Call : public GenerateCall {
 public:
  Call(std::weak_ptr<CallStream> stream, uint64_t id, std::shared_ptr<GenerateObserver> observer)
      : stream_(std::move(stream)), id_(id), observer_(std::move(observer)) {}

  void Cancel() override {
    if (std::shared_ptr<CallStream> stream = stream_.lock()) stream->CancelCall(id_);
  }

  uint64_t id() const { return id_; }
  GenerateObserver& observer() { return *observer_; }

 private:
  const std::weak_ptr<CallStream> stream_;
  const uint64_t id_;
  const std::shared_ptr<GenerateObserver> observer_;
};

std::shared_ptr<CallStream> CallStream::Open(v1::Worker::Stub* stub, CompletionThread* thread) {
  std::shared_ptr<CallStream> stream(new CallStream());
  stream->Connect(stub, thread);
  return stream;
}

void CallStream::Connect(v1::Worker::Stub* stub, CompletionThread* thread) {
  self_ = shared_from_this();
  thread_ = thread;
  thread_->Hold();  // until the finish has completed
  stream_ = stub->PrepareAsyncGenerateStream(&context_, thread_->cq());
  stream_->StartCall(&started_);
  stream_->Read(response_.get(), &read_);
}

std::shared_ptr<GenerateCall> CallStream::Start(const v1::GenerateRequest& request,
                                                std::shared_ptr<GenerateObserver> observer) {
  auto call = std::make_shared<Call>(weak_from_this(), next_id_.fetch_add(1), std::move(observer));
  v1::StreamCommand command;
  command.set_call_id(call->id());
  *command.mutable_start() = request;
  bool added = false;
  bool write = false;
  {
    absl::MutexLock lock(&mu_);
    added = !ended_;
    if (added) {
      calls_[call->id()] = call;
      write = QueueLocked(std::move(command));
    }
  }
  if (write) StartWrite();
  // Only when the stream had already ended (its open calls told): this call is told the same.
  if (!added)
    call->observer().OnDone(absl::UnavailableError("the stream to the worker has ended; try again"));
  return call;
}

bool CallStream::accepting() const {
  absl::MutexLock lock(&mu_);
  return !reads_over_ && !write_failed_ && !ended_;
}

void CallStream::Cancel() { context_.TryCancel(); }

void CallStream::CancelCall(uint64_t id) {
  v1::StreamCommand command;
  command.set_call_id(id);
  command.mutable_cancel();
  bool write = false;
  {
    absl::MutexLock lock(&mu_);
    if (!calls_.contains(id)) return;  // ended already
    write = QueueLocked(std::move(command));
  }
  if (write) StartWrite();
}

bool CallStream::QueueLocked(v1::StreamCommand command) {
  *queued_.add_commands() = std::move(command);
  return NextWriteLocked();
}

void CallStream::StartWrite() { stream_->Write(outgoing_, &written_); }

bool CallStream::NextWriteLocked() {
  if (writing_ || write_failed_ || reads_over_ || queued_.commands_size() == 0) return false;
  outgoing_.Swap(&queued_);
  queued_.Clear();
  writing_ = true;
  return true;
}

void CallStream::OnRead(bool ok) {
  if (ok) {
    Deliver();
    if (thread_->num_lanes() > 0) response_ = std::make_shared<v1::GenerateStreamResponse>();
    stream_->Read(response_.get(), &read_);
    return;
  }
  bool finish = false;
  {
    absl::MutexLock lock(&mu_);
    reads_over_ = true;
    finish = !writing_;  // else the write's completion finishes
  }
  if (finish) StartFinish();
}

void CallStream::Deliver() {
  const int lanes = thread_->num_lanes() + 1;
  deliveries_.resize(lanes);
  // A small message goes on this thread, except for calls whose lane still holds their earlier events (taken
  // once for the whole message: a lane that finishes meanwhile must not let a call's later event overtake one
  // of this message's that went to it).
  const bool burst = response_->events_size() >= kMinEventsToSplit;
  lane_idle_.assign(lanes, 0);
  for (int lane = 1; lane < lanes && !burst; ++lane) lane_idle_[lane] = LaneIdle(lane);
  {
    absl::MutexLock lock(&mu_);
    for (const v1::CallEvent& event : response_->events()) {
      auto it = calls_.find(event.call_id());
      if (it == calls_.end()) continue;
      const int lane = LaneOf(event.call_id());
      deliveries_[lane_idle_[lane] ? 0 : lane].emplace_back(it->second, &event);
      if (event.has_status()) calls_.erase(it);
    }
  }
  // Outside the lock: an observer may start or cancel calls. The lanes' shares first, so that their threads
  // write while this one writes its own; each holds the message its events point into.
  const auto read_at = std::chrono::steady_clock::now();
  for (int lane = 1; lane < lanes; ++lane) {
    if (deliveries_[lane].empty()) continue;
    thread_->lane(lane - 1).Post([message = response_, deliveries = std::exchange(deliveries_[lane], {}),
                                  read_at] { DeliverEach(deliveries, read_at); });
  }
  DeliverEach(deliveries_[0], read_at);
  deliveries_[0].clear();
}

void CallStream::DeliverEach(const std::vector<Delivery>& deliveries,
                             std::chrono::steady_clock::time_point read_at) {
  for (const auto& [call, event] : deliveries) {
    if (event->has_response()) call->observer().OnResponse(event->response(), read_at);
    if (event->has_status()) call->observer().OnDone(FromProto(event->status()));
  }
}

int CallStream::LaneOf(uint64_t id) const { return static_cast<int>(id % (thread_->num_lanes() + 1)); }

bool CallStream::LaneIdle(int lane) const { return lane == 0 || thread_->lane(lane - 1).idle(); }

void CallStream::OnLane(uint64_t id, std::function<void()> work) {
  const int lane = LaneOf(id);
  if (LaneIdle(lane)) return work();
  thread_->lane(lane - 1).Post(std::move(work));
}

void CallStream::OnWritten(bool ok) {
  bool finish = false;
  bool write = false;
  {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    // A failed write means the stream is broken; the read that finds its end finishes it.
    if (!ok) write_failed_ = true;
    finish = reads_over_;
    if (!finish) write = NextWriteLocked();
  }
  if (finish) StartFinish();
  if (write) StartWrite();
}

void CallStream::StartFinish() { stream_->Finish(&status_, &finished_); }

void CallStream::OnFinished() {
  absl::flat_hash_map<uint64_t, std::shared_ptr<Call>> open;
  {
    absl::MutexLock lock(&mu_);
    ended_ = true;
    open = std::exchange(calls_, {});
  }
  // UNAVAILABLE, as a Generate call to a worker that went away ends: the dispatcher tries such a call again
  // (once) or tells the client.
  const absl::Status status = absl::UnavailableError(
      absl::StrCat("the stream to the worker ended before the call did (",
                   status_.ok() ? "closed by the worker" : status_.error_message(), ")"));
  // On each call's lane, after the events queued there before.
  for (auto& [id, call] : open) OnLane(id, [call, status] { call->observer().OnDone(status); });
  thread_->Release();
  ReleaseOne();
}

void CallStream::ReleaseOne() {
  if (pending_.fetch_sub(1) == 1) self_.reset();
}

}  // namespace doze::gateway
