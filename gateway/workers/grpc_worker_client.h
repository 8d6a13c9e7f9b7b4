// WorkerClient over gRPC's callback API: completions run on gRPC's own threads, no thread waits on a call.
#pragma once

#include <memory>
#include <string>

#include "gateway/workers/worker_client.h"

namespace doze::gateway {

// Connects to workers over gRPC (unix sockets or TCP).
class GrpcWorkerClientFactory : public WorkerClientFactory {
 public:
  // Returns a client on a fresh channel to `address`.
  std::shared_ptr<WorkerClient> Connect(const std::string& address) override;
};

}  // namespace doze::gateway
