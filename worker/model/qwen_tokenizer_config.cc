#include "worker/model/qwen_tokenizer_config.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "worker/common/json_util.h"

namespace doze {
namespace {

using Json = nlohmann::json;

// Copied from Qwen2.5-0.5B-Instruct's tokenizer_config.json (sha256 cd8e9439f0570856...).
constexpr char kChatTemplate[] = R"TEMPLATE({%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
)TEMPLATE";

constexpr int kFirstAddedId = 151643;
constexpr int kLastQwen25AddedId = 151664;

// Qwen2.5's added tokens from 151643 on, with whether each is "special" (never split, skipped on decode).
const std::vector<std::pair<const char*, bool>>& Qwen25AddedTokens() {
  static const auto* tokens = new std::vector<std::pair<const char*, bool>>{
      {"<|endoftext|>", true},        {"<|im_start|>", true},       {"<|im_end|>", true},
      {"<|object_ref_start|>", true}, {"<|object_ref_end|>", true}, {"<|box_start|>", true},
      {"<|box_end|>", true},          {"<|quad_start|>", true},     {"<|quad_end|>", true},
      {"<|vision_start|>", true},     {"<|vision_end|>", true},     {"<|vision_pad|>", true},
      {"<|image_pad|>", true},        {"<|video_pad|>", true},      {"<tool_call>", false},
      {"</tool_call>", false},        {"<|fim_prefix|>", false},    {"<|fim_middle|>", false},
      {"<|fim_suffix|>", false},      {"<|fim_pad|>", false},       {"<|repo_name|>", false},
      {"<|file_sep|>", false}};
  return *tokens;
}

// One added_tokens_decoder entry in transformers' layout.
Json AddedToken(const std::string& content, bool special) {
  return {{"content", content}, {"lstrip", false},      {"normalized", false},
          {"rstrip", false},    {"single_word", false}, {"special", special}};
}

// Adds the tokenizer.json added tokens with ids past Qwen2.5's to `decoder`, keeping their flags.
absl::Status AddTokenizerExtras(std::string_view tokenizer_json, absl::string_view source, Json* decoder) {
  absl::StatusOr<Json> parsed = ParseJsonObject(tokenizer_json);
  if (!parsed.ok()) return absl::InvalidArgumentError(absl::StrCat(source, ": ", parsed.status().message()));
  const Json& tokenizer = *parsed;
  auto added = tokenizer.find("added_tokens");
  if (added == tokenizer.end()) return absl::OkStatus();
  for (const Json& token : *added) {
    if (!token.is_object() || !token.contains("id") || !token["id"].is_number_integer() ||
        !token.contains("content") || !token["content"].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": added_tokens: entry ", DescribeJson(token),
                                                     " lacks an integer id or a content string"));
    }
    if (token["id"].get<int64_t>() <= kLastQwen25AddedId) continue;
    Json entry = AddedToken(token["content"], token.value("special", false));
    for (const char* flag : {"lstrip", "normalized", "rstrip", "single_word"}) {
      if (token.contains(flag) && token[flag].is_boolean()) entry[flag] = token[flag];
    }
    (*decoder)[std::to_string(token["id"].get<int64_t>())] = std::move(entry);
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view Qwen25ChatTemplate() { return std::string_view(kChatTemplate, sizeof(kChatTemplate) - 1); }

absl::StatusOr<std::string> Qwen25TokenizerConfigJson(std::string_view tokenizer_json,
                                                      std::string_view source) {
  Json decoder = Json::object();
  Json additional = Json::array();
  int id = kFirstAddedId;
  for (const auto& [content, special] : Qwen25AddedTokens()) {
    decoder[std::to_string(id++)] = AddedToken(content, special);
    // Qwen2.5 lists its special tokens but <|endoftext|>, which is already the pad token.
    if (special && id - 1 != kFirstAddedId) additional.push_back(content);
  }
  if (absl::Status s =
          AddTokenizerExtras(tokenizer_json, absl::string_view(source.data(), source.size()), &decoder);
      !s.ok())
    return s;
  Json config = {{"add_prefix_space", false},
                 {"added_tokens_decoder", decoder},
                 {"additional_special_tokens", additional},
                 {"bos_token", nullptr},
                 {"chat_template", Qwen25ChatTemplate()},
                 {"clean_up_tokenization_spaces", false},
                 {"eos_token", "<|im_end|>"},
                 {"errors", "replace"},
                 {"model_max_length", 131072},
                 {"pad_token", "<|endoftext|>"},
                 {"split_special_tokens", false},
                 {"tokenizer_class", "Qwen2Tokenizer"},
                 {"unk_token", nullptr}};
  // transformers writes UTF-8 as is (ensure_ascii=False) and sorted keys, as nlohmann does.
  return config.dump(2) + "\n";
}

}  // namespace doze
