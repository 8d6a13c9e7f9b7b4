// libFuzzer target: the gateway's HTTP request parsing (Beast's parser under the server's limits) and, for
// every request that parses, the OpenAI body parsing of both endpoints. Nothing may crash or hang.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "gateway/http/request_parser.h"
#include "gateway/openai/completion_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  doze::gateway::HttpLimits limits;
  limits.max_header_bytes = 8 << 10;
  limits.max_body_bytes = 64 << 10;
  absl::StatusOr<doze::gateway::HttpRequest> request = doze::gateway::ParseHttpRequest(bytes, limits);
  if (!request.ok()) return 0;
  (void)doze::gateway::ParseCompletionRequest(request->body, /*chat=*/true);
  (void)doze::gateway::ParseCompletionRequest(request->body, /*chat=*/false);
  return 0;
}
