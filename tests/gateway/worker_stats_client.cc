#include "tests/gateway/worker_stats_client.h"

#include <chrono>

#include "grpcpp/grpcpp.h"
#include "proto/worker.grpc.pb.h"

namespace doze::gateway::testing {

std::optional<v1::StatsResponse> WorkerStats(const std::string& address) {
  auto stub = v1::Worker::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::StatsRequest request;
  v1::StatsResponse response;
  if (!stub->Stats(&context, request, &response).ok()) return std::nullopt;
  return response;
}

}  // namespace doze::gateway::testing
