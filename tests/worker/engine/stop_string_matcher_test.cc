#include "worker/engine/stop_string_matcher.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/worker/engine/fake_text_decoder.h"
#include "worker/engine/output_processor.h"

namespace doze {
namespace {

using ::testing::ElementsAreArray;

struct StopCase {
  const char* name;
  std::vector<std::string> stops;
  std::vector<std::string> pieces;    // text as the tokens release it
  std::vector<std::string> released;  // what each Push returns, then what Flush returns
  bool stopped;
};

class StopStringMatcherTest : public ::testing::TestWithParam<StopCase> {};

TEST_P(StopStringMatcherTest, ReleasesOnlyTextThatCannotStartAStopString) {
  const StopCase& c = GetParam();
  StopStringMatcher matcher(c.stops);
  std::vector<std::string> released;
  for (const std::string& piece : c.pieces) released.push_back(matcher.Push(piece));
  released.push_back(matcher.Flush());
  EXPECT_THAT(released, ElementsAreArray(c.released));
  EXPECT_EQ(matcher.stopped(), c.stopped);
}

// The appending Push (what OutputProcessor uses) releases the same text after whatever the string held.
TEST_P(StopStringMatcherTest, AppendingPushReleasesTheSameText) {
  const StopCase& c = GetParam();
  StopStringMatcher matcher(c.stops);
  std::string all = "prefix:", expected = "prefix:";
  for (const std::string& piece : c.pieces) matcher.Push(piece, &all);
  all += matcher.Flush();
  for (const std::string& released : c.released) expected += released;
  EXPECT_EQ(all, expected);
  EXPECT_EQ(matcher.stopped(), c.stopped);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, StopStringMatcherTest,
    ::testing::Values(
        StopCase{"no_stops", {}, {"ab", "c"}, {"ab", "c", ""}, false},
        StopCase{"within_one_piece", {"lo w"}, {"hello world"}, {"hel", ""}, true},
        StopCase{"across_two_pieces", {"world"}, {"Hello wor", "ld!"}, {"Hello ", "", ""}, true},
        StopCase{"across_three_pieces", {"bcd"}, {"ab", "c", "de"}, {"a", "", "", ""}, true},
        StopCase{"false_alarm", {"bc"}, {"ab", "x"}, {"a", "bx", ""}, false},
        StopCase{"held_until_the_end", {"abc"}, {"xab"}, {"x", "ab"}, false},
        StopCase{"earliest_of_two", {"three", "two"}, {"one two three"}, {"one ", ""}, true},
        StopCase{"repeated_prefix", {"aab"}, {"a", "a", "a", "b"}, {"", "", "a", "", ""}, true},
        StopCase{"nothing_after_stop", {"."}, {"a.", "b"}, {"a", "", ""}, true},
        StopCase{"multibyte", {"\xC3\xA9t\xC3\xA9"}, {"\xC3\xA9", "t", "\xC3\xA9!"}, {"", "", "", ""}, true}),
    [](const auto& info) { return std::string(info.param.name); });

SamplingParams WithMaxTokens(int max_tokens) {
  SamplingParams params;
  params.max_tokens = max_tokens;
  return params;
}

// Feeds `tokens` through an OutputProcessor, appending each to a sequence first as the engine does.
FinishReason Feed(OutputProcessor& processor, const SamplingParams& params,
                  const std::vector<int32_t>& tokens, std::string* text) {
  Sequence seq(1, {1}, params, 0);
  for (int32_t token : tokens) {
    seq.AppendToken(token);
    FinishReason reason = processor.OnToken(seq, token, text);
    if (reason != FinishReason::kNone) return reason;
  }
  return FinishReason::kNone;
}

TEST(OutputProcessorTest, EosEndsWithoutItsTextUnlessIgnored) {
  SamplingParams params = WithMaxTokens(10);
  OutputProcessor processor(params, std::vector<int32_t>{0}, std::make_unique<FakeByteDecoder>());
  std::string text;
  EXPECT_EQ(Feed(processor, params, {'h', 'i', 0, 'x'}, &text), FinishReason::kStop);
  EXPECT_EQ(text, "hi");

  params.ignore_eos = true;
  OutputProcessor ignoring(params, std::vector<int32_t>{0}, std::make_unique<FakeByteDecoder>());
  text.clear();
  EXPECT_EQ(Feed(ignoring, params, {'h', 0, 'x'}, &text), FinishReason::kNone);
  EXPECT_EQ(text, std::string("h\0x", 3));
}

TEST(OutputProcessorTest, StopTokenIdsEndLikeEos) {
  SamplingParams params = WithMaxTokens(10);
  params.stop_token_ids = {'!'};
  OutputProcessor processor(params, {}, std::make_unique<FakeByteDecoder>());
  std::string text;
  EXPECT_EQ(Feed(processor, params, {'o', 'k', '!', 'x'}, &text), FinishReason::kStop);
  EXPECT_EQ(text, "ok");
}

TEST(OutputProcessorTest, LengthFlushesHeldBackText) {
  // The last token starts a two-byte character and "ab" might start the stop string: both are released at the
  // end, the dangling byte as U+FFFD.
  SamplingParams params = WithMaxTokens(4);
  params.stop = {"abc"};
  OutputProcessor processor(params, {}, std::make_unique<FakeByteDecoder>());
  std::string text;
  EXPECT_EQ(Feed(processor, params, {'x', 'a', 'b', 0xC3}, &text), FinishReason::kLength);
  EXPECT_EQ(text, "xab\xEF\xBF\xBD");
}

TEST(OutputProcessorTest, MultiByteCharactersWaitUntilComplete) {
  SamplingParams params = WithMaxTokens(10);
  OutputProcessor processor(params, {}, std::make_unique<FakeByteDecoder>());
  Sequence seq(1, {1}, params, 0);
  std::vector<std::string> deltas;
  for (int32_t token : std::vector<int32_t>{'c', 'a', 'f', 0xC3, 0xA9}) {
    seq.AppendToken(token);
    std::string delta;
    EXPECT_EQ(processor.OnToken(seq, token, &delta), FinishReason::kNone);
    deltas.push_back(delta);
  }
  EXPECT_THAT(deltas, ElementsAreArray({"c", "a", "f", "", "\xC3\xA9"}));
}

}  // namespace
}  // namespace doze
