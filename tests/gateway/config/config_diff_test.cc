// RestartOnlyChanges: which changed keys a reload names as taking effect only at the next start.
#include "gateway/config/config_diff.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace doze::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(ConfigDiffTest, NamesOnlyTheKeysAReloadCannotApply) {
  Config running;
  running.functions["a"].name = "a";
  Config fresh = running;
  EXPECT_THAT(RestartOnlyChanges(running, fresh), IsEmpty());
  // What a reload applies is not named.
  fresh.functions["b"].name = "b";
  fresh.workers.max_queue = 3;
  fresh.workers.queue_timeout = absl::Seconds(2);
  fresh.server.api_keys_file = "keys.txt";
  EXPECT_THAT(RestartOnlyChanges(running, fresh), IsEmpty());
  fresh.server.port = 9090;
  fresh.model.path = "/elsewhere";
  fresh.workers.socket_dir = "/tmp/other";
  fresh.workers.start_timeout = absl::Seconds(5);
  EXPECT_THAT(RestartOnlyChanges(running, fresh),
              ElementsAre("server.listen", "model.path", "workers.socket_dir", "workers.start_timeout"));
}

}  // namespace
}  // namespace doze::gateway
