#include "gateway/openai/completion_format.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace doze::gateway {
namespace {

using Json = nlohmann::json;

// The delta event as the formatter built it before its text-only fast path: the chunk as a JSON object.
std::string DeltaEventAsJson(const CompletionIdentity& identity, const std::string& text) {
  Json chunk = {{"id", identity.id},
                {"object", identity.chat ? "chat.completion.chunk" : "text_completion"},
                {"created", identity.created},
                {"model", identity.model},
                {"system_fingerprint", "doze"}};
  if (identity.usage_in_chunks) chunk["usage"] = nullptr;
  Json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
  if (identity.chat) {
    choice["delta"] = {{"content", text}};
  } else {
    choice["text"] = text;
  }
  chunk["choices"] = Json::array({choice});
  return "data: " + chunk.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n\n";
}

TEST(CompletionFormatTest, DeltaEventsAreTheBytesOfTheJsonChunk) {
  const std::vector<std::string> texts = {
      "",
      "t0 ",
      "Hello, world!",
      "say \"hi\"",
      "back\\slash",
      "line\nbreak\ttab\r",
      std::string("nul\0byte", 8),
      "\x01\x1f\x7f",
      "你好，世界",
      "emoji 😀",
      "bad utf-8 \xff\xfe end",
      "cut \xe4\xbd",
      "</script>&<>'",
  };
  for (bool chat : {true, false}) {
    for (const std::string& model : {std::string("copy_polish"), std::string("m\"o\\d\x01el 模型")}) {
      for (bool usage : {false, true}) {
        CompletionIdentity identity{chat, chat ? "chatcmpl-abc123" : "cmpl-\"x\"", model, 1767225600, usage};
        CompletionFormatter formatter(identity, nullptr);
        for (const std::string& text : texts) {
          v1::GenerateResponse response;
          response.set_text_delta(text);
          EXPECT_EQ(formatter.DeltaEvent(response), DeltaEventAsJson(identity, text))
              << "chat " << chat << ", model " << model << ", usage " << usage << ", text "
              << Json(text).dump(-1, ' ', true, Json::error_handler_t::replace);
        }
      }
    }
  }
}

// With stream_options.include_usage every chunk carries "usage": null, as OpenAI's do, but the usage chunk,
// which carries the counts and no choices.
TEST(CompletionFormatTest, IncludeUsagePutsANullUsageInEveryOtherChunk) {
  CompletionFormatter formatter(CompletionIdentity{true, "chatcmpl-1", "m", 1, true}, nullptr);
  v1::GenerateResponse last;
  last.set_finish_reason(v1::FINISH_REASON_STOP);
  v1::Usage usage;
  usage.set_prompt_tokens(5);
  usage.set_completion_tokens(2);
  for (const std::string& event : {formatter.RoleEvent(), formatter.FinishEvent(last)}) {
    Json chunk = Json::parse(event.substr(6));
    ASSERT_TRUE(chunk.contains("usage")) << event;
    EXPECT_TRUE(chunk["usage"].is_null()) << event;
  }
  Json counted = Json::parse(formatter.UsageEvent(usage).substr(6));
  EXPECT_EQ(counted["usage"]["total_tokens"], 7);
  EXPECT_TRUE(counted["choices"].empty());
  CompletionFormatter without(CompletionIdentity{true, "chatcmpl-1", "m", 1}, nullptr);
  EXPECT_FALSE(Json::parse(without.RoleEvent().substr(6)).contains("usage"));
}

// Completions' logprobs carry text_offset: each token's first character in the completion's text, counted
// on over a stream's responses and from zero again after a restart. Without a tokenizer a token is spelled
// "<id>".
TEST(CompletionFormatTest, CompletionLogprobsCountTextOffsetsOverTheResponses) {
  CompletionFormatter formatter(CompletionIdentity{false, "cmpl-1", "m", 1}, nullptr);
  const auto logprobs_of = [&](std::initializer_list<int32_t> ids) {
    v1::GenerateResponse response;
    for (int32_t id : ids) response.add_logprobs()->set_token_id(id);
    return formatter.Logprobs(response);
  };
  EXPECT_EQ(logprobs_of({7, 12})["text_offset"], Json::array({0, 3}));  // "<7>", "<12>"
  EXPECT_EQ(logprobs_of({5})["text_offset"], Json::array({7}));
  formatter.RestartTextOffsets();
  Json again = logprobs_of({5, 100});
  EXPECT_EQ(again["text_offset"], Json::array({0, 3}));
  EXPECT_EQ(again["tokens"], Json::array({"<5>", "<100>"}));
}

// Characters as the completion's text holds them: a character split over tokens counts once, in the token
// that starts it; a stray continuation byte, or a lead byte whose character never completes, is one U+FFFD.
TEST(CompletionFormatTest, Utf8CharacterCountFollowsTheDecodedText) {
  Utf8CharacterCount count;
  EXPECT_EQ(count.Add("ab"), 2);
  EXPECT_EQ(count.Add("\xe4\xbd"), 1);  // the first two bytes of 你
  EXPECT_EQ(count.Add("\xa0!"), 1);     // its last byte, then "!"
  EXPECT_EQ(count.Add("\x80"), 1);      // a stray continuation byte: U+FFFD
  EXPECT_EQ(count.Add("\xf0\x9f"), 1);  // an emoji's first half
  EXPECT_EQ(count.Add("x"), 1);         // ... never completed: its U+FFFD was counted, then "x"
  EXPECT_EQ(count.Add("\x98\x80"), 2);  // so these are two stray bytes
  EXPECT_EQ(count.Add("\xf0\x9f\x98\x80 "), 2);
  EXPECT_EQ(count.Add("\xc0\x80\xf8\x80"), 4);  // bytes that start no sequence, each with a stray one
}

// A completion's top_logprobs always hold the sampled token, as OpenAI's ("up to logprobs+1 elements") and
// vLLM's do: with logprobs 0 it is the only entry, and where it is among the top ones it appears once.
TEST(CompletionFormatTest, CompletionTopLogprobsHoldTheSampledToken) {
  CompletionFormatter formatter(CompletionIdentity{false, "cmpl-1", "m", 1}, nullptr);
  v1::GenerateResponse response;
  v1::TokenLogprob* outside = response.add_logprobs();  // sampled below the two top ones
  outside->set_token_id(9);
  outside->set_logprob(-3.5f);
  for (auto [id, value] : {std::pair{4, -0.5f}, std::pair{6, -1.25f}}) {
    v1::TokenValue* top = outside->add_top();
    top->set_token_id(id);
    top->set_value(value);
  }
  v1::TokenLogprob* among = response.add_logprobs();  // sampled and the top one
  among->set_token_id(4);
  among->set_logprob(-0.25f);
  v1::TokenValue* top = among->add_top();
  top->set_token_id(4);
  top->set_value(-0.25f);
  v1::TokenLogprob* alone = response.add_logprobs();  // logprobs 0: no top ones asked for
  alone->set_token_id(2);
  alone->set_logprob(-1.0f);
  EXPECT_EQ(formatter.Logprobs(response)["top_logprobs"],
            Json::parse(R"([{"<4>": -0.5, "<6>": -1.25, "<9>": -3.5}, {"<4>": -0.25}, {"<2>": -1.0}])"));
}

TEST(CompletionFormatTest, DeltaEventWithLogprobsCarriesThem) {
  CompletionFormatter formatter(CompletionIdentity{true, "chatcmpl-1", "m", 1}, nullptr);
  v1::GenerateResponse response;
  response.set_text_delta("a");
  v1::TokenLogprob* entry = response.add_logprobs();
  entry->set_token_id(7);
  entry->set_logprob(-0.5f);
  std::string event = formatter.DeltaEvent(response);
  ASSERT_EQ(event.rfind("data: ", 0), 0u);
  Json chunk = Json::parse(event.substr(6));
  EXPECT_EQ(chunk["choices"][0]["delta"]["content"], "a");
  EXPECT_EQ(chunk["choices"][0]["logprobs"]["content"][0]["token"], "<7>");
  EXPECT_EQ(chunk["choices"][0]["logprobs"]["content"][0]["logprob"], -0.5);
}

}  // namespace
}  // namespace doze::gateway
