#include "gateway/config/config_diff.h"

namespace doze::gateway {

std::vector<std::string> RestartOnlyChanges(const Config& running, const Config& fresh) {
  const ServerConfig& a = running.server;
  const ServerConfig& b = fresh.server;
  const WorkersConfig& wa = running.workers;
  const WorkersConfig& wb = fresh.workers;
  const std::pair<const char*, bool> keys[] = {
      {"server.listen", a.host != b.host || a.port != b.port},
      {"server.admin_token_env", a.admin_token_env != b.admin_token_env},
      {"server.io_threads", a.io_threads != b.io_threads},
      {"server.grpc_threads", a.grpc_threads != b.grpc_threads},
      {"server.delivery_threads", a.delivery_threads != b.delivery_threads},
      {"server.busy_poll", a.busy_poll != b.busy_poll},
      {"server.max_connections", a.max_connections != b.max_connections},
      {"server.max_body_bytes", a.max_body_bytes != b.max_body_bytes},
      {"server.max_header_bytes", a.max_header_bytes != b.max_header_bytes},
      {"server.header_timeout", a.header_timeout != b.header_timeout},
      {"server.body_timeout", a.body_timeout != b.body_timeout},
      {"server.stream_idle_timeout", a.stream_idle_timeout != b.stream_idle_timeout},
      {"server.max_stream_buffer_bytes", a.max_stream_buffer_bytes != b.max_stream_buffer_bytes},
      {"server.shutdown_grace", a.shutdown_grace != b.shutdown_grace},
      {"model.path", running.model.path != fresh.model.path},
      {"model.backend", running.model.backend != fresh.model.backend},
      {"workers.binary", wa.binary != wb.binary},
      {"workers.socket_dir", wa.socket_dir != wb.socket_dir},
      {"workers.start_timeout", wa.start_timeout != wb.start_timeout},
      {"workers.stop_timeout", wa.stop_timeout != wb.stop_timeout},
      {"workers.backoff_initial", wa.backoff_initial != wb.backoff_initial},
      {"workers.backoff_max", wa.backoff_max != wb.backoff_max},
  };
  std::vector<std::string> changed;
  for (const auto& [key, differs] : keys) {
    if (differs) changed.emplace_back(key);
  }
  return changed;
}

}  // namespace doze::gateway
