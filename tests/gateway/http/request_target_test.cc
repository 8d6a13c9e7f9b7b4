// RequestPath: what a request target routes by, against hand-written expectations (RFC 9112 3.2, RFC
// 3986 2.1).
#include "gateway/http/request_target.h"

#include "gtest/gtest.h"

namespace doze::gateway {
namespace {

TEST(RequestTargetTest, PathOfEachForm) {
  const std::pair<const char*, const char*> cases[] = {
      {"/v1/models", "/v1/models"},
      {"/v1/models?limit=2", "/v1/models"},
      {"http://example.test/healthz?x=%zz", "/healthz"},  // the query is not decoded
      {"HTTPS://example.test", "/"},
      {"/v1/%6Dodels", "/v1/models"},
      {"/v1/%6dodels", "/v1/models"},  // hex digits in either case
      {"/ops/functions/copy%5Fpolish/start", "/ops/functions/copy_polish/start"},
      {"/a%2Fb", "/a/b"},
      {"/%25", "/%"},  // decoded once
      {"/caf%C3%A9", "/caf\xC3\xA9"},
  };
  for (const auto& [target, want] : cases) {
    absl::StatusOr<std::string> path = RequestPath(target);
    ASSERT_TRUE(path.ok()) << target << ": " << path.status();
    EXPECT_EQ(*path, want) << target;
  }
}

TEST(RequestTargetTest, MalformedEncodingsAreRefused) {
  for (const char* target : {"/a%", "/a%4", "/a%g1", "/a%1g", "/a%00b", "/%%41"}) {
    EXPECT_EQ(RequestPath(target).status().code(), absl::StatusCode::kInvalidArgument) << target;
  }
}

}  // namespace
}  // namespace doze::gateway
