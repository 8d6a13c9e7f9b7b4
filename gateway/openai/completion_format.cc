#include "gateway/openai/completion_format.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "worker/tokenizer/utf8.h"

namespace doze::gateway {
namespace {

using Json = nlohmann::json;

std::string Dump(const Json& json) { return json.dump(-1, ' ', false, Json::error_handler_t::replace); }

// Appends `text` as the contents of a JSON string (no quotes), as Dump writes it.
void AppendJsonStringContents(const std::string& text, std::string* out) {
  // Printable ASCII other than '"' and '\\' is written as is; anything else goes through the serializer.
  bool plain = std::all_of(text.begin(), text.end(),
                           [](char c) { return c >= 0x20 && c <= 0x7e && c != '"' && c != '\\'; });
  if (plain) {
    out->append(text);
    return;
  }
  std::string quoted = Dump(Json(text));
  out->append(quoted, 1, quoted.size() - 2);
}

}  // namespace

CompletionFormatter::CompletionFormatter(CompletionIdentity identity, const Tokenizer* tokenizer)
    : identity_(std::move(identity)), tokenizer_(tokenizer) {}

void CompletionFormatter::SetDeltaAffixes() const {
  // DeltaEventFromJson's event for an empty text, cut inside the text's quotes (the first such key: the
  // object's keys are sorted and "choices" comes first).
  const std::string empty = DeltaEventFromJson(v1::GenerateResponse());
  const std::string key = identity_.chat ? "\"content\":\"\"" : "\"text\":\"\"";
  const size_t cut = empty.find(key) + key.size() - 1;
  delta_prefix_ = empty.substr(0, cut);
  delta_suffix_ = empty.substr(cut);
}

const char* CompletionFormatter::FinishReason(v1::FinishReason reason) {
  switch (reason) {
    case v1::FINISH_REASON_LENGTH:
      return "length";
    case v1::FINISH_REASON_ABORT:
      return "abort";
    default:
      return "stop";
  }
}

Json CompletionFormatter::UsageJson(const v1::Usage& usage) {
  return {{"prompt_tokens", usage.prompt_tokens()},
          {"completion_tokens", usage.completion_tokens()},
          {"total_tokens", usage.prompt_tokens() + usage.completion_tokens()},
          {"prompt_tokens_details", {{"cached_tokens", usage.cached_tokens()}}}};
}

Json CompletionFormatter::TimingsJson(const v1::Timings& timings) {
  return {{"worker_queue_ms", timings.queue_wait_ms()},
          {"worker_ttft_ms", timings.time_to_first_token_ms()},
          {"worker_total_ms", timings.total_ms()}};
}

std::string CompletionFormatter::Event(const Json& payload) {
  return absl::StrCat("data: ", Dump(payload), "\n\n");
}

std::string CompletionFormatter::ErrorEvent(const std::string& error_json) {
  return absl::StrCat("data: ", error_json, "\n\n");
}

std::string CompletionFormatter::DoneEvent() { return "data: [DONE]\n\n"; }

Json CompletionFormatter::ChunkBase() const {
  Json chunk = {{"id", identity_.id},
                {"object", identity_.chat ? "chat.completion.chunk" : "text_completion"},
                {"created", identity_.created},
                {"model", identity_.model},
                {"system_fingerprint", "doze"}};
  if (identity_.usage_in_chunks) chunk["usage"] = nullptr;
  return chunk;
}

std::string CompletionFormatter::RoleEvent() const {
  if (!identity_.chat) return "";
  Json chunk = ChunkBase();
  chunk["choices"] = Json::array({{{"index", 0},
                                   {"delta", {{"role", "assistant"}, {"content", ""}}},
                                   {"logprobs", nullptr},
                                   {"finish_reason", nullptr}}});
  return Event(chunk);
}

std::string CompletionFormatter::DeltaEvent(const v1::GenerateResponse& response) const {
  if (response.logprobs_size() > 0) return DeltaEventFromJson(response);
  if (delta_prefix_.empty()) SetDeltaAffixes();  // once, at a stream's first text
  std::string event;
  event.reserve(delta_prefix_.size() + response.text_delta().size() + delta_suffix_.size());
  event += delta_prefix_;
  AppendJsonStringContents(response.text_delta(), &event);
  event += delta_suffix_;
  return event;
}

std::string CompletionFormatter::DeltaEventFromJson(const v1::GenerateResponse& response) const {
  Json chunk = ChunkBase();
  Json choice = {{"index", 0}, {"logprobs", Logprobs(response)}, {"finish_reason", nullptr}};
  if (identity_.chat) {
    choice["delta"] = {{"content", response.text_delta()}};
  } else {
    choice["text"] = response.text_delta();
  }
  chunk["choices"] = Json::array({choice});
  return Event(chunk);
}

std::string CompletionFormatter::FinishEvent(const v1::GenerateResponse& last) const {
  Json chunk = ChunkBase();
  Json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", FinishReason(last.finish_reason())}};
  if (identity_.chat) {
    choice["delta"] = Json::object();
  } else {
    choice["text"] = "";
  }
  chunk["choices"] = Json::array({choice});
  chunk["doze"] = TimingsJson(last.timings());
  return Event(chunk);
}

std::string CompletionFormatter::UsageEvent(const v1::Usage& usage) const {
  Json chunk = ChunkBase();
  chunk["choices"] = Json::array();
  chunk["usage"] = UsageJson(usage);
  return Event(chunk);
}

std::string CompletionFormatter::WholeResponse(const std::string& text, const Json& logprobs,
                                               const v1::GenerateResponse& last) const {
  Json choice = {{"index", 0}, {"logprobs", logprobs}, {"finish_reason", FinishReason(last.finish_reason())}};
  if (identity_.chat) {
    choice["message"] = {{"role", "assistant"}, {"content", text}, {"refusal", nullptr}};
  } else {
    choice["text"] = text;
  }
  Json body = {{"id", identity_.id},
               {"object", identity_.chat ? "chat.completion" : "text_completion"},
               {"created", identity_.created},
               {"model", identity_.model},
               {"system_fingerprint", "doze"},
               {"choices", Json::array({choice})},
               {"usage", UsageJson(last.usage())},
               {"doze", TimingsJson(last.timings())}};
  return Dump(body);
}

std::string CompletionFormatter::TokenText(int32_t id) const {
  if (tokenizer_ == nullptr) return absl::StrCat("<", id, ">");
  return std::string(tokenizer_->TokenBytes(id));
}

int64_t Utf8CharacterCount::Add(const std::string& bytes) {
  int64_t characters = 0;
  for (unsigned char byte : bytes) {
    if ((byte & 0xc0) == 0x80 && continuations_due_ > 0) {
      --continuations_due_;  // inside a character counted at its lead
      continue;
    }
    ++characters;  // ASCII, a lead byte, or a byte no sequence can hold (one U+FFFD)
    continuations_due_ = std::max(0, Utf8SequenceLength(byte) - 1);
  }
  return characters;
}

Json CompletionFormatter::Logprobs(const v1::GenerateResponse& response) const {
  if (response.logprobs_size() == 0) return nullptr;
  auto bytes_of = [](const std::string& text) {
    Json bytes = Json::array();
    for (unsigned char c : text) bytes.push_back(static_cast<int>(c));
    return bytes;
  };
  if (identity_.chat) {
    Json content = Json::array();
    for (const v1::TokenLogprob& entry : response.logprobs()) {
      std::string token = TokenText(entry.token_id());
      Json top = Json::array();
      for (const v1::TokenValue& alternative : entry.top()) {
        std::string alt = TokenText(alternative.token_id());
        top.push_back({{"token", alt}, {"logprob", alternative.value()}, {"bytes", bytes_of(alt)}});
      }
      content.push_back({{"token", token},
                         {"logprob", entry.logprob()},
                         {"bytes", bytes_of(token)},
                         {"top_logprobs", top}});
    }
    return {{"content", content}};
  }
  Json tokens = Json::array(), token_logprobs = Json::array(), top_logprobs = Json::array(),
       text_offset = Json::array();
  for (const v1::TokenLogprob& entry : response.logprobs()) {
    std::string token = TokenText(entry.token_id());
    text_offset.push_back(text_offset_);
    text_offset_ += characters_.Add(token);
    Json top = Json::object();
    for (const v1::TokenValue& alternative : entry.top())
      top[TokenText(alternative.token_id())] = alternative.value();
    // The sampled token is always there, as in OpenAI's and vLLM's answers: up to logprobs + 1 entries.
    top.emplace(token, entry.logprob());
    top_logprobs.push_back(top);
    tokens.push_back(std::move(token));
    token_logprobs.push_back(entry.logprob());
  }
  return {{"tokens", tokens},
          {"token_logprobs", token_logprobs},
          {"top_logprobs", top_logprobs},
          {"text_offset", text_offset}};
}

}  // namespace doze::gateway
