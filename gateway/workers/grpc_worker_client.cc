#include "gateway/workers/grpc_worker_client.h"

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "proto/health.grpc.pb.h"
#include "proto/worker.grpc.pb.h"

namespace doze::gateway {

// What a completion queue event points to: the code that handles the operation's completion.
struct CompletionTag {
  std::function<void(bool ok)> run;
};

// A thread that takes events off its own completion queue and runs their tags. gRPC polls the sockets of the
// calls on this queue from this thread (no other), so a worker's response is read and handled on one thread.
class CompletionThread {
 public:
  CompletionThread() : thread_([this] { Loop(); }) {
    pthread_setname_np(thread_.native_handle(), "doze-grpc");
  }

  // Shuts the queue down and waits a few seconds for the calls still open to end; past that the thread and
  // the queue are left to the process's exit rather than blocking it.
  ~CompletionThread() {
    cq_->Shutdown();
    absl::MutexLock lock(&mu_);
    if (mu_.AwaitWithTimeout(absl::Condition(&exited_), absl::Seconds(5))) {
      thread_.join();
      delete cq_;
    } else {
      thread_.detach();
    }
  }

  grpc::CompletionQueue* cq() { return cq_; }

 private:
  void Loop() {
    void* tag = nullptr;
    bool ok = false;
    while (cq_->Next(&tag, &ok)) static_cast<CompletionTag*>(tag)->run(ok);
    absl::MutexLock lock(&mu_);
    exited_ = true;
  }

  grpc::CompletionQueue* const cq_ = new grpc::CompletionQueue();
  absl::Mutex mu_;
  bool exited_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: it starts once the members it uses exist
};

namespace {

absl::Status ToAbsl(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

std::chrono::system_clock::time_point Deadline(absl::Duration timeout) {
  return std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout);
}

// One Generate stream: the start, then reads until the stream ends, then the status. Owns itself until both
// the start and the status have completed.
class AsyncGenerate : public GenerateCall, public std::enable_shared_from_this<AsyncGenerate> {
 public:
  explicit AsyncGenerate(std::shared_ptr<GenerateObserver> observer) : observer_(std::move(observer)) {}

  // The request is serialized here; it need not outlive the call.
  void Start(v1::Worker::Stub* stub, const v1::GenerateRequest& request, grpc::CompletionQueue* cq) {
    self_ = shared_from_this();
    reader_ = stub->PrepareAsyncGenerate(&context_, request, cq);
    reader_->StartCall(&started_);
    reader_->Read(&response_, &read_);
  }

  void Cancel() override {
    absl::MutexLock lock(&mu_);
    if (!done_) context_.TryCancel();
  }

 private:
  void OnRead(bool ok) {
    if (!ok) return reader_->Finish(&status_, &finished_);
    observer_->OnResponse(response_);
    reader_->Read(&response_, &read_);
  }

  void OnFinished() {
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
    }
    observer_->OnDone(ToAbsl(status_));
    Release();
  }

  // Drops one of the two completions the call waits for; the last one frees the call.
  void Release() {
    if (pending_.fetch_sub(1) == 1) self_.reset();
  }

  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientAsyncReader<v1::GenerateResponse>> reader_;
  v1::GenerateResponse response_;
  grpc::Status status_;
  std::shared_ptr<GenerateObserver> observer_;
  std::shared_ptr<AsyncGenerate> self_;
  std::atomic<int> pending_{2};  // The start and the status.
  CompletionTag started_{[this](bool) { Release(); }};
  CompletionTag read_{[this](bool ok) { OnRead(ok); }};
  CompletionTag finished_{[this](bool) { OnFinished(); }};
  absl::Mutex mu_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

// One unary call, deleted once its callback has run.
template <typename Response>
struct UnaryCall {
  grpc::ClientContext context;
  Response response;
  grpc::Status status;
  std::unique_ptr<grpc::ClientAsyncResponseReader<Response>> reader;
  std::function<void(UnaryCall&)> done;
  CompletionTag finished{[this](bool) {
    done(*this);
    delete this;
  }};
};

// One connection to the worker, driven by one completion thread.
struct Shard {
  std::unique_ptr<v1::Worker::Stub> worker;
  std::shared_ptr<CompletionThread> threads;
};

class GrpcWorkerClient : public WorkerClient {
 public:
  // The first shard also carries the unary calls; Generate calls go to the shards in turn.
  explicit GrpcWorkerClient(
      std::vector<std::pair<std::shared_ptr<grpc::Channel>, std::shared_ptr<CompletionThread>>> channels)
      : health_(grpc::health::v1::Health::NewStub(channels.front().first)) {
    for (auto& [channel, threads] : channels) shards_.push_back(Shard{v1::Worker::NewStub(channel), threads});
  }

  void CheckHealth(absl::Duration timeout, std::function<void(bool)> done) override {
    Unary<grpc::health::v1::HealthCheckResponse>(
        timeout,
        [done = std::move(done)](auto& call) {
          done(call.status.ok() && call.response.status() == grpc::health::v1::HealthCheckResponse::SERVING);
        },
        [this](grpc::ClientContext* context, grpc::CompletionQueue* cq) {
          return health_->PrepareAsyncCheck(context, grpc::health::v1::HealthCheckRequest(), cq);
        });
  }

  std::shared_ptr<GenerateCall> Generate(const v1::GenerateRequest& request,
                                         std::shared_ptr<GenerateObserver> observer) override {
    auto call = std::make_shared<AsyncGenerate>(std::move(observer));
    const Shard& shard = shards_[next_shard_.fetch_add(1, std::memory_order_relaxed) % shards_.size()];
    call->Start(shard.worker.get(), request, shard.threads->cq());
    return call;
  }

  void Stats(absl::Duration timeout, std::function<void(absl::StatusOr<v1::StatsResponse>)> done) override {
    Unary<v1::StatsResponse>(
        timeout,
        [done = std::move(done)](auto& call) {
          if (!call.status.ok()) return done(ToAbsl(call.status));
          done(std::move(call.response));
        },
        [this](grpc::ClientContext* context, grpc::CompletionQueue* cq) {
          return worker()->PrepareAsyncStats(context, v1::StatsRequest(), cq);
        });
  }

  void Sleep(absl::Duration timeout, std::function<void(absl::Status)> done) override {
    Unary<v1::SleepResponse>(timeout, StatusOnly<v1::SleepResponse>(std::move(done)),
                             [this](grpc::ClientContext* context, grpc::CompletionQueue* cq) {
                               return worker()->PrepareAsyncSleep(context, v1::SleepRequest(), cq);
                             });
  }

  void Wake(absl::Duration timeout, std::function<void(absl::Status)> done) override {
    Unary<v1::WakeResponse>(timeout, StatusOnly<v1::WakeResponse>(std::move(done)),
                            [this](grpc::ClientContext* context, grpc::CompletionQueue* cq) {
                              return worker()->PrepareAsyncWake(context, v1::WakeRequest(), cq);
                            });
  }

  void Drain(absl::Duration timeout, std::function<void(absl::Status)> done) override {
    Unary<v1::DrainResponse>(timeout, StatusOnly<v1::DrainResponse>(std::move(done)),
                             [this](grpc::ClientContext* context, grpc::CompletionQueue* cq) {
                               return worker()->PrepareAsyncDrain(context, v1::DrainRequest(), cq);
                             });
  }

 private:
  template <typename Response>
  static std::function<void(UnaryCall<Response>&)> StatusOnly(std::function<void(absl::Status)> done) {
    return [done = std::move(done)](UnaryCall<Response>& call) { done(ToAbsl(call.status)); };
  }

  // Runs one unary RPC that `prepare(context, cq)` sets up; `done` gets the finished call.
  template <typename Response, typename Prepare>
  void Unary(absl::Duration timeout, std::function<void(UnaryCall<Response>&)> done, Prepare prepare) {
    auto* call = new UnaryCall<Response>();
    call->done = std::move(done);
    call->context.set_deadline(Deadline(timeout));
    call->reader = prepare(&call->context, shards_.front().threads->cq());
    call->reader->StartCall();
    call->reader->Finish(&call->response, &call->status, &call->finished);
  }

  // The stub unary calls use: the first shard's (they run on its thread too).
  v1::Worker::Stub* worker() { return shards_.front().worker.get(); }

  std::vector<Shard> shards_;
  std::atomic<size_t> next_shard_{0};
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

}  // namespace

GrpcWorkerClientFactory::GrpcWorkerClientFactory(int num_threads) {
  for (int i = 0; i < std::max(1, num_threads); ++i) threads_.push_back(std::make_shared<CompletionThread>());
}

GrpcWorkerClientFactory::~GrpcWorkerClientFactory() = default;

std::shared_ptr<WorkerClient> GrpcWorkerClientFactory::Connect(const std::string& address) {
  grpc::ChannelArguments arguments;
  // A worker that restarts comes back quickly: do not wait out gRPC's default reconnect back-off.
  arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
  arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  arguments.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
  // Channels to one address share a connection unless each has its own subchannel pool.
  if (threads_.size() > 1) arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  std::vector<std::pair<std::shared_ptr<grpc::Channel>, std::shared_ptr<CompletionThread>>> channels;
  for (const std::shared_ptr<CompletionThread>& threads : threads_) {
    channels.emplace_back(grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), arguments),
                          threads);
  }
  return std::make_shared<GrpcWorkerClient>(std::move(channels));
}

}  // namespace doze::gateway
