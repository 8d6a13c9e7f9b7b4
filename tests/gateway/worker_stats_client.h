// Asks a worker for its Stats over gRPC, for tests that check what the worker saw.
#pragma once

#include <optional>
#include <string>

#include "proto/worker.pb.h"

namespace doze::gateway::testing {

// Returns the worker's Stats at `address` ("unix:/..."), or nullopt when it does not answer within 5 s.
std::optional<v1::StatsResponse> WorkerStats(const std::string& address);

}  // namespace doze::gateway::testing
