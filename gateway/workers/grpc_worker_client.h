// WorkerClient over gRPC's asynchronous API on one completion queue that the factory's own threads drive: no
// thread waits on a call, and a completion (a worker's response) is handled, and its HTTP answer written, on
// the thread that read it from the worker's socket. Generate calls travel on one GenerateStream per
// connection (CallStream), so that a worker's step of tokens for many calls is one message to read. gRPC's
// callback API would instead bring its own pollers (half the machine's cores, however few the gateway is
// pinned to), which pass each event between them.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gateway/workers/worker_client.h"

namespace doze::gateway {

class CompletionThread;

// Connects to workers over gRPC (unix sockets or TCP).
class GrpcWorkerClientFactory : public WorkerClientFactory {
 public:
  // Starts `num_threads` threads, each with its own completion queue; every client this factory makes opens
  // one connection per thread, each with its own GenerateStream, and spreads its Generate calls over them in
  // turn, so that a burst of responses is answered on that many threads at once. `busy_poll`: how long each
  // thread polls its queue after an event before it blocks (CompletionThread). `delivery_lanes`: threads
  // beside each of them that write a share of a worker message's events to the clients (CallStream).
  explicit GrpcWorkerClientFactory(int num_threads = 1, absl::Duration busy_poll = absl::ZeroDuration(),
                                   int delivery_lanes = 0);
  ~GrpcWorkerClientFactory() override;

  // Returns a client on a fresh channel to `address`.
  std::shared_ptr<WorkerClient> Connect(const std::string& address) override;

 private:
  std::vector<std::shared_ptr<CompletionThread>> threads_;  // Each with its own completion queue.
};

}  // namespace doze::gateway
