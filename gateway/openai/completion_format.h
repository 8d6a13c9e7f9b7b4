// Writes OpenAI response bodies: the whole chat.completion / text_completion object, and the SSE chunks of a
// stream (chat.completion.chunk), from the worker's responses.
#pragma once

#include <cstdint>
#include <string>

#include "nlohmann/json.hpp"
#include "proto/worker.pb.h"
#include "worker/tokenizer/tokenizer.h"

namespace doze::gateway {

// The identity of one response: shared by all its chunks.
// Counts the characters UTF-8 bytes add to a text as a decoder that replaces each stray byte with U+FFFD
// does, across calls: a character split over two calls counts once, in the first.
class Utf8CharacterCount {
 public:
  int64_t Add(const std::string& bytes);

 private:
  int continuations_due_ = 0;  // continuation bytes the last lead byte announced, not yet seen
};

struct CompletionIdentity {
  bool chat = true;
  std::string id;  // "chatcmpl-..." or "cmpl-..."
  std::string model;
  int64_t created = 0;  // Unix seconds.
  // stream_options.include_usage: every chunk carries "usage", null but in the usage chunk, as OpenAI's do.
  bool usage_in_chunks = false;
};

// Formats one request's output; `tokenizer` (may be null) spells the tokens of logprobs.
class CompletionFormatter {
 public:
  CompletionFormatter(CompletionIdentity identity, const Tokenizer* tokenizer);

  // Returns the SSE event of the first chunk of a chat stream (the assistant role, no content).
  std::string RoleEvent() const;

  // Returns the SSE event carrying one worker response's text and logprobs.
  std::string DeltaEvent(const v1::GenerateResponse& response) const;

  // Returns the SSE event with the finish reason (empty delta).
  std::string FinishEvent(const v1::GenerateResponse& last) const;

  // Returns the SSE event with usage only (stream_options.include_usage).
  std::string UsageEvent(const v1::Usage& usage) const;

  // Returns the SSE event of an error that ended a started stream.
  static std::string ErrorEvent(const std::string& error_json);

  // Returns the terminating `data: [DONE]` event.
  static std::string DoneEvent();

  // Returns the whole non-streaming response body.
  std::string WholeResponse(const std::string& text, const nlohmann::json& logprobs,
                            const v1::GenerateResponse& last) const;

  // Returns the logprobs JSON of one response's tokens, in the format of this endpoint (null when none).
  // Completions' text_offset counts the characters of the tokens before, over the calls since the last
  // RestartTextOffsets: call it once for each response, in order.
  nlohmann::json Logprobs(const v1::GenerateResponse& response) const;

  // Starts text_offset from zero again (the request restarted on another worker).
  void RestartTextOffsets() const {
    text_offset_ = 0;
    characters_ = Utf8CharacterCount();
  }

  // Returns OpenAI's finish_reason for the worker's.
  static const char* FinishReason(v1::FinishReason reason);

  // Returns the usage object.
  static nlohmann::json UsageJson(const v1::Usage& usage);

  // Returns the worker's own timings ("doze": {"worker_total_ms", ...}), which let clients and the benchmark
  // tell the gateway's share of the latency from the worker's.
  static nlohmann::json TimingsJson(const v1::Timings& timings);

 private:
  nlohmann::json ChunkBase() const;
  // Returns the delta event built as a JSON object (the reference that the text-only fast path matches).
  std::string DeltaEventFromJson(const v1::GenerateResponse& response) const;
  // Sets delta_prefix_ and delta_suffix_ from DeltaEventFromJson, so that the two paths cannot drift apart.
  void SetDeltaAffixes() const;
  static std::string Event(const nlohmann::json& payload);
  // Returns a token's text (lossy UTF-8) and raw bytes.
  std::string TokenText(int32_t id) const;

  CompletionIdentity identity_;
  const Tokenizer* tokenizer_;
  // A text-only delta event is delta_prefix_ + the text as a JSON string's contents + delta_suffix_: the
  // bytes the JSON object would dump to, without building it for every token (set at the first, a formatter
  // serving one response on one thread at a time).
  mutable std::string delta_prefix_;
  mutable std::string delta_suffix_;
  mutable int64_t text_offset_ = 0;  // characters of the completion's tokens so far (Logprobs)
  mutable Utf8CharacterCount characters_;
};

}  // namespace doze::gateway
