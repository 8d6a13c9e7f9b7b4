// What a configuration reload (SIGHUP) cannot apply: the keys that take effect only when the gateway starts.
#pragma once

#include <string>
#include <vector>

#include "gateway/config/config.h"

namespace doze::gateway {

// The key paths whose values differ between `running` and `fresh` and that a reload leaves as they were:
// the HTTP server's (listen, threads, limits, timeouts, admin_token_env), the model's, and how workers are
// run (binary, socket_dir, start and stop timeouts, back-off). Functions, their prompts and settings,
// server.api_keys_file, workers.max_queue, queue_timeout and unresponsive_timeout, and the lifecycle policy
// are applied by a reload and not listed.
std::vector<std::string> RestartOnlyChanges(const Config& running, const Config& fresh);

}  // namespace doze::gateway
