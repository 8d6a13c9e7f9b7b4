#include "gateway/openai/completion_request.h"

#include "absl/strings/str_cat.h"
#include "gateway/openai/api_error.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace doze::gateway {
namespace {

using ::testing::HasSubstr;

TEST(CompletionRequestTest, ParsesEveryHonouredField) {
  absl::StatusOr<CompletionRequest> request = ParseCompletionRequest(R"({
    "model": "copy_polish",
    "messages": [{"role": "developer", "content": "be brief"},
                 {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
    "temperature": 0.5, "top_p": 0.9, "max_tokens": 10, "max_completion_tokens": 20, "stop": "END", "seed": 7,
    "presence_penalty": 0.1, "frequency_penalty": -0.2, "logit_bias": {"42": -100}, "logprobs": true,
    "top_logprobs": 3, "response_format": {"type": "json_object"}, "user": "u1", "stream": true,
    "stream_options": {"include_usage": true}, "n": 1, "unknown_field": [1]})",
                                                                     /*chat=*/true);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->model, "copy_polish");
  ASSERT_EQ(request->messages.size(), 2u);
  EXPECT_EQ(request->messages[0].role, "system");
  EXPECT_EQ(request->messages[1].content, "ab");
  EXPECT_DOUBLE_EQ(*request->temperature, 0.5);
  EXPECT_EQ(*request->max_tokens, 20);
  EXPECT_EQ(request->stop, std::vector<std::string>{"END"});
  EXPECT_EQ(*request->seed, 7u);
  EXPECT_FLOAT_EQ(request->logit_bias.at(42), -100);
  EXPECT_TRUE(request->logprobs);
  EXPECT_EQ(request->top_logprobs, 3);
  EXPECT_EQ(request->response_format->type, "json_object");
  EXPECT_TRUE(request->stream);
  EXPECT_TRUE(request->include_usage);
}

TEST(CompletionRequestTest, LegacyCompletionsTakeAPromptAndAnIntegerLogprobs) {
  absl::StatusOr<CompletionRequest> request =
      ParseCompletionRequest(R"({"model": "m", "prompt": ["hello"], "logprobs": 2})", /*chat=*/false);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->prompt, "hello");
  EXPECT_TRUE(request->logprobs);
  EXPECT_EQ(request->top_logprobs, 2);
  // Token ids, bare or as the one prompt of a batch; not several prompts, not ids outside int32.
  for (const char* ids : {R"([9707, 1879, 0])", R"([[9707, 1879, 0]])"}) {
    absl::StatusOr<CompletionRequest> with_ids =
        ParseCompletionRequest(absl::StrCat(R"({"model":"m","prompt":)", ids, "}"), /*chat=*/false);
    ASSERT_TRUE(with_ids.ok()) << with_ids.status();
    EXPECT_EQ(with_ids->prompt_ids, (std::vector<int32_t>{9707, 1879, 0})) << ids;
    EXPECT_EQ(with_ids->prompt, "");
  }
  for (const char* bad : {R"(["a","b"])", R"([-1])", R"([])", R"([1.5])", R"([4294967296])", R"([1,"a"])"}) {
    absl::StatusOr<CompletionRequest> rejected =
        ParseCompletionRequest(absl::StrCat(R"({"model":"m","prompt":)", bad, "}"), /*chat=*/false);
    ASSERT_FALSE(rejected.ok()) << bad;
    EXPECT_THAT(std::string(rejected.status().message()), HasSubstr("prompt: must be")) << bad;
  }
}

struct Bad {
  const char* body;
  const char* message;
};

// Integers written as whole floats (Python's json.dumps of a float: 10.0) are those integers, as vLLM takes
// them; fractions and values past 64 bits are not.
TEST(CompletionRequestTest, WholeFloatsAreIntegers) {
  absl::StatusOr<CompletionRequest> request = ParseCompletionRequest(
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":10.0,"seed":-3.0,"n":1.0})",
      /*chat=*/true);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->max_tokens, 10);
  EXPECT_EQ(request->seed, static_cast<uint64_t>(-3));
  for (const auto& [field, message] : std::vector<std::pair<std::string, std::string>>{
           {R"("max_tokens":0.0)", "max_tokens: must be between 1 and 2147483647, got 0"},
           {R"("max_tokens":2.5)", "max_tokens: must be an integer"},
           {R"("seed":1e23)", "seed: must be between"},
           {R"("seed":-9.3e18)", "seed: must be between"},
           {R"("seed":9223372036854775808.0)", "seed: must be between"}}) {
    request = ParseCompletionRequest(
        absl::StrCat(R"({"model":"m","messages":[{"role":"user","content":"x"}],)", field, "}"), true);
    EXPECT_THAT(std::string(request.status().message()), HasSubstr(message)) << field;
  }
}

// vLLM's extra sampling parameters are read with vLLM's ranges; min_tokens, which doze does not provide, is
// refused unless 0.
TEST(CompletionRequestTest, VllmSamplingParameters) {
  absl::StatusOr<CompletionRequest> request = ParseCompletionRequest(
      R"({"model":"m","prompt":"x","top_k":5,"min_p":0.25,"repetition_penalty":1.5,"stop_token_ids":[3,151645],
          "ignore_eos":true,"min_tokens":0})",
      /*chat=*/false);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->top_k, 5);
  EXPECT_EQ(request->min_p, 0.25);
  EXPECT_EQ(request->repetition_penalty, 1.5);
  EXPECT_EQ(request->stop_token_ids, (std::vector<int32_t>{3, 151645}));
  EXPECT_TRUE(request->ignore_eos);
  for (const auto& [field, message] : std::vector<std::pair<std::string, std::string>>{
           {R"("top_k":-2)", "top_k: must be between -1 and"},
           {R"("min_p":1.5)", "min_p: must be between 0 and 1"},
           {R"("repetition_penalty":0)", "repetition_penalty: must be in (0, 100]"},
           {R"("stop_token_ids":[-1])", "stop_token_ids: must be an array of token ids"},
           {R"("stop_token_ids":7)", "stop_token_ids: must be an array of token ids"},
           {R"("ignore_eos":1)", "ignore_eos: must be a boolean"},
           {R"("min_tokens":3)", "min_tokens: only 0 is supported"}}) {
    request = ParseCompletionRequest(absl::StrCat(R"({"model":"m","prompt":"x",)", field, "}"), false);
    EXPECT_THAT(std::string(request.status().message()), HasSubstr(message)) << field;
  }
}

TEST(CompletionRequestTest, BadBodiesAre400NamingTheField) {
  const Bad table[] = {
      {"{", "not valid JSON"},
      {"\"text\"", "JSON object"},
      {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\xc3\x28\"}]}", "UTF-8"},
      {R"({"messages":[]})", "model"},
      {R"({"model":"m"})", "messages: is required"},
      {R"({"model":"m","messages":[]})", "non-empty array"},
      {R"({"model":"m","messages":["hi"]})", "messages[0]: must be an object"},
      {R"({"model":"m","messages":[{"role":"tool","content":"x"}]})", "messages[0].role"},
      {R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]})", "only text parts"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":3})",
       "temperature: must be between"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"top_p":0})", "top_p"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0})", "max_tokens"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":1.5})",
       "max_tokens: must be an integer"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"n":3})", "n: only 1"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"stop":[1]})", "stop"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]})", "stop"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"logit_bias":{"x":1}})", "logit_bias"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"logit_bias":{"1":101}})", "logit_bias"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"top_logprobs":2})", "needs logprobs"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"yaml"}})",
       "response_format"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"})",
       "stream: must be a boolean"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":1}})",
       "include_usage"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}})",
       "stream_options: only allowed when stream is true"},
      {R"({"model":"m","messages":[{"role":"user"}]})", "messages[0].content: required"},
      {R"({"model":"m","messages":[{"role":"system","content":null},{"role":"user","content":"x"}]})",
       "messages[0].content: required"},
      {R"({"model":"m","messages":[{"role":"user","content":"x","name":5}]})",
       "messages[0].name: must be a string"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"n":0})", "n: only 1 is supported, got 0"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"stop":""})", "stop: must not be an empty"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{}}})",
       "json_schema.name: required"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":1}}})",
       "json_schema.name"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"a b"}}})",
       "json_schema.name: 1 to 64"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"a","schema":"x"}}})",
       "json_schema.schema: must be an object"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"a","strict":"yes"}}})",
       "json_schema.strict: must be a boolean"},
      {R"({"model":"m",)", "parse error"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"user":5})", "user: must be a string"},
  };
  for (const Bad& bad : table) {
    absl::StatusOr<CompletionRequest> request = ParseCompletionRequest(bad.body, /*chat=*/true);
    ASSERT_FALSE(request.ok()) << bad.body;
    EXPECT_EQ(HttpStatusOf(request.status()), 400) << bad.body;
    EXPECT_THAT(std::string(request.status().message()), HasSubstr(bad.message)) << bad.body;
  }
}

// OpenAI parameters whose effect doze does not provide are refused with 400 naming them, rather than ignored;
// their neutral values pass. A budget past the context is left to the context check
// (context_length_exceeded).
TEST(CompletionRequestTest, UnsupportedParametersAre400AndTheirNeutralValuesPass) {
  const std::string chat = R"({"model":"m","messages":[{"role":"user","content":"x"}])";
  const std::string legacy = R"({"model":"m","prompt":"x")";
  const std::pair<std::string, std::string> refused_chat[] = {
      {R"(,"tools":[{"type":"function","function":{"name":"f","parameters":{}}}]})", "tools: tool calling"},
      {R"(,"tool_choice":"auto"})", "tool_choice"},
      {R"(,"tool_choice":{"type":"function","function":{"name":"f"}}})", "tool_choice"},
      {R"(,"functions":[{"name":"f"}]})", "functions"},
      {R"(,"function_call":"auto"})", "function_call"},
      {R"(,"audio":{"voice":"alloy","format":"wav"}})", "audio"},
      {R"(,"modalities":["text","audio"]})", "modalities"},
  };
  for (const auto& [extra, message] : refused_chat) {
    absl::StatusOr<CompletionRequest> request = ParseCompletionRequest(chat + extra, /*chat=*/true);
    ASSERT_FALSE(request.ok()) << extra;
    EXPECT_EQ(HttpStatusOf(request.status()), 400) << extra;
    EXPECT_THAT(std::string(request.status().message()), HasSubstr(message)) << extra;
  }
  const std::pair<std::string, std::string> refused_legacy[] = {
      {R"(,"best_of":3})", "best_of: only 1"},
      {R"(,"echo":true})", "echo"},
      {R"(,"suffix":"end"})", "suffix"},
      {R"(,"max_tokens":2147483648})", "max_tokens: must be between"},
  };
  for (const auto& [extra, message] : refused_legacy) {
    absl::StatusOr<CompletionRequest> request = ParseCompletionRequest(legacy + extra, /*chat=*/false);
    ASSERT_FALSE(request.ok()) << extra;
    EXPECT_EQ(HttpStatusOf(request.status()), 400) << extra;
    EXPECT_THAT(std::string(request.status().message()), HasSubstr(message)) << extra;
  }
  for (const char* extra :
       {R"(,"tools":[],"tool_choice":"none","parallel_tool_calls":false})",
        R"(,"function_call":"none","modalities":["text"]})", R"(,"max_tokens":2000000})"}) {
    EXPECT_TRUE(ParseCompletionRequest(chat + extra, /*chat=*/true).ok()) << extra;
  }
  for (const char* extra : {R"(,"best_of":1,"echo":false,"suffix":""})", R"(,"max_tokens":2147483647})"}) {
    EXPECT_TRUE(ParseCompletionRequest(legacy + extra, /*chat=*/false).ok()) << extra;
  }
}

// What is accepted beside those: an assistant turn without content, a full json_schema object; and a JSON
// error speaks of the request, not of the parsing library.
TEST(CompletionRequestTest, AssistantTurnsMayOmitContentAndJsonErrorsNameNoLibrary) {
  EXPECT_TRUE(
      ParseCompletionRequest(
          R"({"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","content":null},)"
          R"({"role":"user","content":"y","name":"ann"}]})",
          /*chat=*/true)
          .ok());
  EXPECT_TRUE(
      ParseCompletionRequest(
          R"({"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema",)"
          R"("json_schema":{"name":"reply-1","description":"d","schema":{"type":"object"},"strict":true}}})",
          /*chat=*/true)
          .ok());
  absl::StatusOr<CompletionRequest> broken = ParseCompletionRequest("{\"model\":", /*chat=*/true);
  ASSERT_FALSE(broken.ok());
  EXPECT_THAT(std::string(broken.status().message()), ::testing::Not(HasSubstr("json.exception")));
  EXPECT_THAT(std::string(broken.status().message()), HasSubstr("not valid JSON: parse error"));
}

}  // namespace
}  // namespace doze::gateway
