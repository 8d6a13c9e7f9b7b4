#include "worker/service/worker_client.h"

namespace doze::service {
namespace {

// Unary calls to a local worker answer in microseconds; this only keeps a wedged worker from hanging a
// client.
constexpr auto kUnaryTimeout = std::chrono::seconds(60);

// A worker being started is not listening yet; gRPC's default reconnect back-off (1 s and up) would keep a
// client waiting long after it is. Local workers come up in well under a second, so retry quickly.
std::shared_ptr<grpc::Channel> WorkerChannel(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 10);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 10);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 100);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

void SetTimeout(grpc::ClientContext& context, std::chrono::milliseconds timeout) {
  context.set_deadline(std::chrono::system_clock::now() + timeout);
}

}  // namespace

WorkerClient::WorkerClient(const std::string& target)
    : channel_(WorkerChannel(target)),
      worker_(v1::Worker::NewStub(channel_)),
      health_(grpc::health::v1::Health::NewStub(channel_)) {}

grpc::Status WorkerClient::Generate(const v1::GenerateRequest& request,
                                    const std::function<void(const v1::GenerateResponse&)>& on_response,
                                    std::optional<std::chrono::milliseconds> timeout,
                                    grpc::ClientContext* context) {
  grpc::ClientContext own_context;
  if (context == nullptr) context = &own_context;
  if (timeout) SetTimeout(*context, *timeout);
  std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader = worker_->Generate(context, request);
  v1::GenerateResponse response;
  while (reader->Read(&response)) on_response(response);
  return reader->Finish();
}

grpc::Status WorkerClient::Stats(v1::StatsResponse* response) {
  grpc::ClientContext context;
  SetTimeout(context, kUnaryTimeout);
  return worker_->Stats(&context, v1::StatsRequest(), response);
}

grpc::Status WorkerClient::Sleep(v1::SleepResponse* response) {
  grpc::ClientContext context;
  SetTimeout(context, kUnaryTimeout);
  return worker_->Sleep(&context, v1::SleepRequest(), response);
}

grpc::Status WorkerClient::Wake(v1::WakeResponse* response) {
  grpc::ClientContext context;
  SetTimeout(context, kUnaryTimeout);
  return worker_->Wake(&context, v1::WakeRequest(), response);
}

grpc::Status WorkerClient::Drain(v1::DrainResponse* response) {
  grpc::ClientContext context;
  SetTimeout(context, kUnaryTimeout);
  return worker_->Drain(&context, v1::DrainRequest(), response);
}

grpc::Status WorkerClient::Health(std::string* status, const std::string& service) {
  grpc::ClientContext context;
  SetTimeout(context, kUnaryTimeout);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status call = health_->Check(&context, request, &response);
  if (call.ok()) *status = grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
  return call;
}

bool WorkerClient::WaitForServing(std::chrono::milliseconds timeout) {
  bool serving = false;
  WatchHealth(
      [&serving](const std::string& status) {
        serving = status == "SERVING";
        return !serving;
      },
      timeout);
  return serving;
}

void WorkerClient::WatchHealth(const std::function<bool(const std::string&)>& on_status,
                               std::chrono::milliseconds timeout) {
  // Health.Watch streams every change of the status; wait_for_ready rides out a worker not listening yet.
  grpc::ClientContext context;
  SetTimeout(context, timeout);
  context.set_wait_for_ready(true);
  std::unique_ptr<grpc::ClientReader<grpc::health::v1::HealthCheckResponse>> reader =
      health_->Watch(&context, grpc::health::v1::HealthCheckRequest());
  grpc::health::v1::HealthCheckResponse response;
  while (reader->Read(&response)) {
    if (!on_status(grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status()))) {
      context.TryCancel();
      break;
    }
  }
  reader->Finish();
}

}  // namespace doze::service
