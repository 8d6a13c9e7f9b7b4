// Qwen2.5's ChatML rendering, as exact strings.
#include "worker/tokenizer/chat_template.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace doze {
namespace {

constexpr char kDefaultSystem[] =
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n";

TEST(ChatTemplateTest, UserTurnGetsTheDefaultSystemPrompt) {
  auto prompt = RenderChatPrompt({{"user", "What is 12 times 7?"}});
  ASSERT_TRUE(prompt.ok()) << prompt.status();
  EXPECT_EQ(*prompt, std::string(kDefaultSystem) +
                         "<|im_start|>user\nWhat is 12 times 7?<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateTest, LeadingSystemMessageReplacesTheDefault) {
  auto prompt = RenderChatPrompt({{"system", "You are terse."}, {"user", "Hi"}});
  ASSERT_TRUE(prompt.ok());
  EXPECT_EQ(*prompt,
            "<|im_start|>system\nYou are terse.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\n");
}

TEST(ChatTemplateTest, MultiTurnWithoutGenerationPrompt) {
  auto prompt =
      RenderChatPrompt({{"user", "Hi"}, {"assistant", "Hello."}, {"system", "late"}, {"user", "Bye"}},
                       /*add_generation_prompt=*/false);
  ASSERT_TRUE(prompt.ok());
  EXPECT_EQ(*prompt, std::string(kDefaultSystem) +
                         "<|im_start|>user\nHi<|im_end|>\n"
                         "<|im_start|>assistant\nHello.<|im_end|>\n"
                         "<|im_start|>system\nlate<|im_end|>\n"
                         "<|im_start|>user\nBye<|im_end|>\n");
}

TEST(ChatTemplateTest, EmptyConversationAndEmptyContent) {
  auto empty = RenderChatPrompt({});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, std::string(kDefaultSystem) + "<|im_start|>assistant\n");
  auto blank = RenderChatPrompt({{"system", ""}}, false);
  ASSERT_TRUE(blank.ok());
  EXPECT_EQ(*blank, "<|im_start|>system\n<|im_end|>\n");
}

TEST(ChatTemplateTest, UnknownRoleIsAnError) {
  auto prompt = RenderChatPrompt({{"user", "Hi"}, {"tool", "42"}});
  ASSERT_FALSE(prompt.ok());
  EXPECT_EQ(prompt.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(prompt.status().message()), ::testing::HasSubstr("messages[1]"));
  EXPECT_THAT(std::string(prompt.status().message()), ::testing::HasSubstr("\"tool\""));
  EXPECT_FALSE(RenderChatPrompt({{"User", "Hi"}}).ok());
}

}  // namespace
}  // namespace doze
