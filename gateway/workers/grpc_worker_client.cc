#include "gateway/workers/grpc_worker_client.h"

#include <chrono>

#include "absl/synchronization/mutex.h"
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

// One Generate stream; owns itself until gRPC reports it done.
class GenerateReactor : public grpc::ClientReadReactor<v1::GenerateResponse>,
                        public GenerateCall,
                        public std::enable_shared_from_this<GenerateReactor> {
 public:
  GenerateReactor(v1::GenerateRequest request, std::shared_ptr<GenerateObserver> observer)
      : request_(std::move(request)), observer_(std::move(observer)) {}

  void Start(v1::Worker::Stub* stub) {
    self_ = shared_from_this();
    stub->async()->Generate(&context_, &request_, this);
    StartRead(&response_);
    StartCall();
  }

  void Cancel() override {
    absl::MutexLock lock(&mu_);
    if (!done_) context_.TryCancel();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;
    observer_->OnResponse(response_);
    StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override {
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
    }
    observer_->OnDone(ToAbsl(status));
    self_.reset();
  }

 private:
  grpc::ClientContext context_;
  v1::GenerateRequest request_;
  v1::GenerateResponse response_;
  std::shared_ptr<GenerateObserver> observer_;
  std::shared_ptr<GenerateReactor> self_;
  absl::Mutex mu_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

// The state of one unary call, kept alive until its callback runs.
template <typename Request, typename Response>
struct UnaryCall {
  grpc::ClientContext context;
  Request request;
  Response response;
};

class GrpcWorkerClient : public WorkerClient {
 public:
  explicit GrpcWorkerClient(std::shared_ptr<grpc::Channel> channel)
      : worker_(v1::Worker::NewStub(channel)), health_(grpc::health::v1::Health::NewStub(channel)) {}

  void CheckHealth(absl::Duration timeout, std::function<void(bool)> done) override {
    auto call = std::make_shared<
        UnaryCall<grpc::health::v1::HealthCheckRequest, grpc::health::v1::HealthCheckResponse>>();
    call->context.set_deadline(Deadline(timeout));
    health_->async()->Check(
        &call->context, &call->request, &call->response, [call, done = std::move(done)](grpc::Status status) {
          done(status.ok() && call->response.status() == grpc::health::v1::HealthCheckResponse::SERVING);
        });
  }

  std::shared_ptr<GenerateCall> Generate(const v1::GenerateRequest& request,
                                         std::shared_ptr<GenerateObserver> observer) override {
    auto reactor = std::make_shared<GenerateReactor>(request, std::move(observer));
    reactor->Start(worker_.get());
    return reactor;
  }

  void Stats(absl::Duration timeout, std::function<void(absl::StatusOr<v1::StatsResponse>)> done) override {
    auto call = std::make_shared<UnaryCall<v1::StatsRequest, v1::StatsResponse>>();
    call->context.set_deadline(Deadline(timeout));
    worker_->async()->Stats(&call->context, &call->request, &call->response,
                            [call, done = std::move(done)](grpc::Status status) {
                              if (!status.ok()) return done(ToAbsl(status));
                              done(std::move(call->response));
                            });
  }

  void Sleep(absl::Duration timeout, std::function<void(absl::Status)> done) override {
    Unary<v1::SleepRequest, v1::SleepResponse>(
        timeout, std::move(done),
        [this](auto* c, auto* q, auto* r, auto cb) { worker_->async()->Sleep(c, q, r, std::move(cb)); });
  }

  void Wake(absl::Duration timeout, std::function<void(absl::Status)> done) override {
    Unary<v1::WakeRequest, v1::WakeResponse>(
        timeout, std::move(done),
        [this](auto* c, auto* q, auto* r, auto cb) { worker_->async()->Wake(c, q, r, std::move(cb)); });
  }

  void Drain(absl::Duration timeout, std::function<void(absl::Status)> done) override {
    Unary<v1::DrainRequest, v1::DrainResponse>(
        timeout, std::move(done),
        [this](auto* c, auto* q, auto* r, auto cb) { worker_->async()->Drain(c, q, r, std::move(cb)); });
  }

 private:
  // Runs one unary RPC through `start(context, request, response, callback)`.
  template <typename Request, typename Response, typename Start>
  void Unary(absl::Duration timeout, std::function<void(absl::Status)> done, Start start) {
    auto call = std::make_shared<UnaryCall<Request, Response>>();
    call->context.set_deadline(Deadline(timeout));
    start(&call->context, &call->request, &call->response,
          std::function<void(grpc::Status)>(
              [call, done = std::move(done)](grpc::Status status) { done(ToAbsl(status)); }));
  }

  std::unique_ptr<v1::Worker::Stub> worker_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

}  // namespace

std::shared_ptr<WorkerClient> GrpcWorkerClientFactory::Connect(const std::string& address) {
  grpc::ChannelArguments arguments;
  // A worker that restarts comes back quickly: do not wait out gRPC's default reconnect back-off.
  arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
  arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  arguments.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
  return std::make_shared<GrpcWorkerClient>(
      grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), arguments));
}

}  // namespace doze::gateway
