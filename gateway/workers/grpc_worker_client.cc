#include "gateway/workers/grpc_worker_client.h"

#include <atomic>
#include <chrono>
#include <functional>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gateway/workers/call_stream.h"
#include "gateway/workers/completion_thread.h"
#include "grpcpp/grpcpp.h"
#include "proto/health.grpc.pb.h"
#include "proto/worker.grpc.pb.h"

namespace doze::gateway {

namespace {

absl::Status ToAbsl(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

std::chrono::system_clock::time_point Deadline(absl::Duration timeout) {
  return std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout);
}

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

// One connection to the worker, driven by one completion thread, and the GenerateStream that carries the
// Generate calls sent over it (opened at the first call, and again after it breaks).
struct Shard {
  std::unique_ptr<v1::Worker::Stub> worker;
  std::shared_ptr<CompletionThread> thread;
  absl::Mutex mu;
  std::shared_ptr<CallStream> stream ABSL_GUARDED_BY(mu);

  // The stream to send a call on.
  std::shared_ptr<CallStream> Stream() {
    absl::MutexLock lock(&mu);
    if (stream == nullptr || !stream->accepting()) stream = CallStream::Open(worker.get(), thread.get());
    return stream;
  }
};

class GrpcWorkerClient : public WorkerClient {
 public:
  // The first shard also carries the unary calls; Generate calls go to the shards in turn.
  explicit GrpcWorkerClient(
      std::vector<std::pair<std::shared_ptr<grpc::Channel>, std::shared_ptr<CompletionThread>>> channels)
      : health_(grpc::health::v1::Health::NewStub(channels.front().first)) {
    for (auto& [channel, thread] : channels) {
      shards_.push_back(std::make_unique<Shard>());
      shards_.back()->worker = v1::Worker::NewStub(channel);
      shards_.back()->thread = thread;
    }
  }

  // The streams would otherwise stay open (a read always waits on them) and hold their completion queues.
  ~GrpcWorkerClient() override {
    for (const std::unique_ptr<Shard>& shard : shards_) {
      absl::MutexLock lock(&shard->mu);
      if (shard->stream != nullptr) shard->stream->Cancel();
    }
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
    Shard& shard = *shards_[next_shard_.fetch_add(1, std::memory_order_relaxed) % shards_.size()];
    return shard.Stream()->Start(request, std::move(observer));
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
    call->reader = prepare(&call->context, shards_.front()->thread->cq());
    call->reader->StartCall();
    call->reader->Finish(&call->response, &call->status, &call->finished);
  }

  // The stub unary calls use: the first shard's (they run on its thread too).
  v1::Worker::Stub* worker() { return shards_.front()->worker.get(); }

  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<size_t> next_shard_{0};
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

}  // namespace

GrpcWorkerClientFactory::GrpcWorkerClientFactory(int num_threads, absl::Duration busy_poll,
                                                 int delivery_lanes) {
  for (int i = 0; i < std::max(1, num_threads); ++i) {
    threads_.push_back(std::make_shared<CompletionThread>(busy_poll, delivery_lanes));
  }
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
