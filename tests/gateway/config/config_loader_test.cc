#include "gateway/config/config_loader.h"

#include <cstdlib>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace doze::gateway {
namespace {

using ::testing::HasSubstr;

constexpr char kMinimal[] = R"(
model: { path: models/tiny }
functions:
  copy_polish: { system_prompt: "Polish." }
)";

TEST(ConfigLoaderTest, MinimalConfigTakesDefaults) {
  absl::StatusOr<Config> config = ParseConfig(kMinimal);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server.host, "127.0.0.1");
  EXPECT_EQ(config->server.port, 8080);
  EXPECT_EQ(config->workers.queue_timeout, absl::Seconds(30));
  EXPECT_EQ(config->workers.unresponsive_timeout, absl::Seconds(10));
  EXPECT_EQ(config->lifecycle.functions.at("copy_polish").idle_timeout, absl::Minutes(5));
  EXPECT_TRUE(config->lifecycle.state_file.empty());
  ASSERT_EQ(config->functions.size(), 1u);
  EXPECT_EQ(config->functions.at("copy_polish").system_prompt, "Polish.");
  EXPECT_FALSE(config->functions.at("copy_polish").temperature.has_value());
}

// schedule.archive's presence turns archiving on; `enabled` is a YAML boolean (any other word was read as
// true: "enabled: False" archived the function).
TEST(ConfigLoaderTest, ArchiveEnabledIsABoolean) {
  const std::string base = "model: {path: m}\nfunctions: {f: {}}\nschedule: {archive: {window: 1d";
  for (const auto& [value, want] : std::vector<std::pair<std::string, bool>>{{"", true},
                                                                             {", enabled: true", true},
                                                                             {", enabled: False", false},
                                                                             {", enabled: no", false},
                                                                             {", enabled: off", false},
                                                                             {", enabled: Yes", true}}) {
    absl::StatusOr<Config> config = ParseConfig(base + value + "}}");
    ASSERT_TRUE(config.ok()) << value << ": " << config.status();
    EXPECT_EQ(config->lifecycle.functions.at("f").archive.enabled, want) << value;
  }
  for (const char* value : {"banana", "0", "\"\""}) {
    absl::StatusOr<Config> config = ParseConfig(base + ", enabled: " + value + "}}");
    EXPECT_THAT(config.status().message(),
                HasSubstr(absl::StrCat("schedule.archive.enabled: expected true or false, got")))
        << value;
  }
}

TEST(ConfigLoaderTest, ShippedConfigHasTheArticlesThreeFunctions) {
  std::string path = std::string(std::getenv("DOZE_SOURCE_DIR")) + "/config/doze.yaml";
  absl::StatusOr<Config> config = LoadConfigFile(path);
  ASSERT_TRUE(config.ok()) << config.status();
  for (const char* name : {"customer_service", "copy_polish", "table_parse"}) {
    ASSERT_TRUE(config->functions.contains(name)) << name;
    EXPECT_FALSE(config->functions.at(name).system_prompt.empty()) << name;
  }
  const FunctionConfig& customer_service = config->functions.at("customer_service");
  EXPECT_EQ(customer_service.response_format, "json_object");
  EXPECT_EQ(customer_service.worker.max_num_seqs, 64);
  EXPECT_DOUBLE_EQ(*config->functions.at("copy_polish").temperature, 0.3);
}

TEST(ConfigLoaderTest, FullConfigParsesEveryKey) {
  absl::StatusOr<Config> config = ParseConfig(R"(
server:
  listen: 0.0.0.0:0
  api_keys_file: keys.txt
  admin_token_env: MY_TOKEN
  io_threads: 3
  grpc_threads: 2
  delivery_threads: 1
  busy_poll: 150us
  max_connections: 10
  header_timeout: 2s
  stream_idle_timeout: 250ms
  max_stream_buffer_bytes: 262144
model: { path: /m, backend: cpu }
workers:
  binary: /bin/w
  socket_dir: /tmp/x
  start_timeout: 1m
  queue_timeout: 5s
  unresponsive_timeout: 3s
  max_queue: 7
functions:
  customer_service:
    system_prompt: s
    temperature: 0.7
    max_tokens: 512
    response_format: json_object
    worker: { gpu: 1, gpu_memory_fraction: 0.25, max_num_seqs: 8 }
    schedule: { idle_timeout: 30s }
billing: { currency: CNY }
schedule: { timezone: Asia/Shanghai }
state_file: /var/lib/doze/state.db
simulation: { cold_start: 0.6s }
)");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server.host, "0.0.0.0");
  EXPECT_EQ(config->server.port, 0);
  EXPECT_EQ(config->server.stream_idle_timeout, absl::Milliseconds(250));
  EXPECT_EQ(config->server.max_stream_buffer_bytes, 262144);
  EXPECT_EQ(config->server.io_threads, 3);
  EXPECT_EQ(config->server.grpc_threads, 2);
  EXPECT_EQ(config->server.delivery_threads, 1);
  EXPECT_EQ(config->server.busy_poll, absl::Microseconds(150));
  EXPECT_EQ(config->workers.start_timeout, absl::Minutes(1));
  EXPECT_EQ(config->workers.max_queue, 7);
  EXPECT_EQ(config->workers.unresponsive_timeout, absl::Seconds(3));
  const FunctionConfig& function = config->functions.at("customer_service");
  EXPECT_EQ(*function.worker.gpu, 1);
  EXPECT_DOUBLE_EQ(*function.worker.gpu_memory_fraction, 0.25);
  EXPECT_TRUE(function.schedule.IsMap());
  EXPECT_EQ(config->lifecycle.billing.currency, "CNY");
  EXPECT_EQ(config->lifecycle.functions.at("customer_service").idle_timeout, absl::Seconds(30));
  EXPECT_EQ(config->lifecycle.functions.at("customer_service").timezone_name, "Asia/Shanghai");
  EXPECT_EQ(config->lifecycle.state_file, "/var/lib/doze/state.db");
}

struct BadConfig {
  const char* yaml;
  const char* error;
};

class BadConfigTest : public ::testing::TestWithParam<BadConfig> {};

TEST_P(BadConfigTest, NamesTheKeyPath) {
  absl::StatusOr<Config> config = ParseConfig(GetParam().yaml);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(config.status().message()), HasSubstr(GetParam().error));
}

INSTANTIATE_TEST_SUITE_P(
    Table, BadConfigTest,
    ::testing::Values(
        BadConfig{"model: {path: m}\nfunctions: {copy_polish: {temperature: 3}}",
                  "functions.copy_polish.temperature: must be between 0 and 2"},
        BadConfig{"model: {path: m}\nfunctions: {copy_polish: {temperature: hot}}",
                  "functions.copy_polish.temperature: must be a number"},
        BadConfig{"model: {path: m}\nfunctions: {copy_polish: {tempature: 1}}",
                  "functions.copy_polish.tempature: unknown key"},
        BadConfig{"model: {path: m}\nfunctions: {f: {}}\ncolour: red", "colour: unknown key"},
        BadConfig{"functions: {f: {}}", "model.path: is required"},
        BadConfig{"model: {path: m, backend: tpu}\nfunctions: {f: {}}",
                  "model.backend: must be auto, cuda or cpu"},
        BadConfig{"model: {path: m}", "functions: at least one function"},
        BadConfig{"model: {path: m}\nfunctions: {Bad Name: {}}", "functions.Bad Name: name must be"},
        BadConfig{"model: {path: m}\nserver: {listen: nowhere}\nfunctions: {f: {}}",
                  "server.listen: must be host:port"},
        BadConfig{"model: {path: m}\nserver: {listen: 'h:99999'}\nfunctions: {f: {}}", "server.listen"},
        BadConfig{"model: {path: m}\nworkers: {queue_timeout: soon}\nfunctions: {f: {}}",
                  "workers.queue_timeout: must be a positive duration"},
        BadConfig{"model: {path: m}\nworkers: {queue_timeout: 0s}\nfunctions: {f: {}}",
                  "workers.queue_timeout: must be a positive duration"},
        BadConfig{"model: {path: m}\nworkers: {unresponsive_timeout: -1s}\nfunctions: {f: {}}",
                  "workers.unresponsive_timeout: must be a positive duration"},
        BadConfig{"model: {path: m}\nserver: {busy_poll: -5us}\nfunctions: {f: {}}",
                  "server.busy_poll: must be a non-negative duration"},
        BadConfig{"model: {path: m}\nserver: {max_stream_buffer_bytes: 100}\nfunctions: {f: {}}",
                  "server.max_stream_buffer_bytes"},
        BadConfig{"model: {path: m}\nserver: {delivery_threads: 9}\nfunctions: {f: {}}",
                  "server.delivery_threads: must be between 0 and 8"},
        BadConfig{"model: {path: m}\nworkers: {max_queue: 0}\nfunctions: {f: {}}",
                  "workers.max_queue: must be between 1"},
        BadConfig{"model: {path: m}\nfunctions: {f: {worker: {max_num_seqs: x}}}",
                  "functions.f.worker.max_num_seqs"},
        BadConfig{"model: {path: m}\nfunctions: {f: {worker: {gpus: 2}}}",
                  "functions.f.worker.gpus: unknown key"},
        BadConfig{"model: {path: m}\nfunctions: {f: {response_format: yaml}}", "functions.f.response_format"},
        BadConfig{"model: {path: m}\nfunctions: {f: {system_prompt: [a]}}",
                  "functions.f.system_prompt: must be a scalar"},
        BadConfig{"model: {path: m}\nserver: [1]\nfunctions: {f: {}}", "server: must be a mapping"},
        BadConfig{"model: {path: m}\nworkers: {idle_stop: 5m}\nfunctions: {f: {}}",
                  "workers.idle_stop: was replaced by schedule.idle_timeout"},
        BadConfig{"model: {path: m}\nschedule: {idle_action: nap}\nfunctions: {f: {}}",
                  "schedule.idle_action"},
        BadConfig{"model: {path: m}\nfunctions: {f: {schedule: {resident: [{days: mon-fri, from: 9am, to: "
                  "'18:00'}]}}}",
                  "functions.f.schedule.resident[0].from"},
        BadConfig{"model: {path: m}\nfunctions: {f: {}}\nbilling: {price: 1}", "billing.price: unknown key"},
        BadConfig{"model: {path: m\nfunctions:", "line "},
        // A key given twice would have the first read and the second ignored unseen.
        BadConfig{"model: {path: m}\nmodel: {path: n}\nfunctions: {f: {}}", "model: appears more than once"},
        BadConfig{"model: {path: m}\nfunctions:\n  f:\n    temperature: 0.2\n    temperature: 0.9\n",
                  "functions.f.temperature: appears more than once"},
        BadConfig{"model: {path: m}\nfunctions:\n  f: {temperature: 0.2}\n  f: {max_tokens: 9}\n",
                  "functions.f: appears more than once"},
        // Keys that are not plain names (yaml-cpp's conversion of them to a string threw: the gateway
        // aborted, on a reload too): an unrendered template, a list, null, a merge key; at any depth.
        BadConfig{
            "model: {path: m}\nfunctions:\n  {{ fn_name }}:\n    max_tokens: 8\n",
            "functions: line 3: a key must be a plain name, not a mapping (a template left unrendered?)"},
        BadConfig{"model: {path: m}\nfunctions: {f: {}}\nserver: {[a]: 1}",
                  "server: line 3: a key must be a plain name, not a list"},
        BadConfig{"model: {path: m}\nfunctions: {f: {}}\n{x: 1}: 2",
                  "config: line 3: a key must be a plain name"},
        BadConfig{"model: {path: m}\nfunctions: {~: {max_tokens: 3}}",
                  "functions: line 2: a key must be a plain name, not null"},
        BadConfig{"model: {path: m}\nfunctions: {f: {}}\nschedule:\n  resident: [{from: \"09:00\", to: "
                  "\"10:00\", {x: 1}: 2}]",
                  "a key must be a plain name, not a mapping"},
        BadConfig{
            "base: &b {temperature: 0.2}\nmodel: {path: m}\nfunctions:\n  f:\n    <<: *b\n",
            "functions.f: line 5: a key must be a plain name, not a merge key (<<), which is not supported"},
        BadConfig{"model: {path: m}\nfunctions:\n  f: {\"<<\": 1}\n", "functions.f.<<: unknown key"},
        BadConfig{"model: {path: m}\nfunctions: {f: {schedule: {prewarm: 1000000000h}}}",
                  "functions.f.schedule.prewarm: must be at most 7d"},
        BadConfig{"model: {path: m}\nfunctions: {f: {}}\nschedule: {prewarm: 169h}",
                  "schedule.prewarm: must be at most 7d"},
        // Digits only: a sign or a space had been taken.
        BadConfig{
            "model: {path: m}\nfunctions: {f: {}}\nschedule: {resident: [{from: \"+9:00\", to: \"10:00\"}]}",
            "schedule.resident[0].from: expected HH:MM, got \"+9:00\""},
        BadConfig{
            "model: {path: m}\nfunctions: {f: {}}\nschedule: {resident: [{from: \" 9:00\", to: \"10:00\"}]}",
            "expected HH:MM, got \" 9:00\""},
        BadConfig{
            "model: {path: m}\nfunctions: {f: {}}\nschedule: {resident: [{from: \"09:00\", to: \"-0:00\"}]}",
            "expected HH:MM, got \"-0:00\""}));

}  // namespace
}  // namespace doze::gateway
