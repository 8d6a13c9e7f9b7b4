// Conversions between the worker protocol (proto/worker.proto) and the engine's types, both directions: the
// worker reads requests and writes outputs, `doze client` does the reverse.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "proto/worker.pb.h"
#include "worker/engine/request_output.h"
#include "worker/engine/sampling_params.h"
#include "worker/runtime/model_instance.h"

namespace doze::service {

// The response format a request asked for; carried, not yet enforced.
struct ResponseFormat {
  v1::ResponseFormat::Type type = v1::ResponseFormat::TYPE_TEXT;
  std::string json_schema;
};

// A Generate request in the engine's terms.
struct ParsedRequest {
  PromptInput prompt;
  SamplingParams params;
  ResponseFormat response_format;
};

// Reads the prompt, the sampling parameters (unset fields take SamplingParams' defaults) and the response
// format. InvalidArgument naming the field for a missing or empty prompt or a schema that is not JSON;
// parameter ranges are left to SamplingParams::Validate.
absl::StatusOr<ParsedRequest> ParseGenerateRequest(const v1::GenerateRequest& request);

// Writes every field of `params` (the client sends what its flags and input file say).
void SamplingParamsToProto(const SamplingParams& params, v1::SamplingParameters* out);
// Writes the one form of `prompt` that is set.
void PromptToProto(const PromptInput& prompt, v1::GenerateRequest* out);

// Appends one step's output to `response` (several outputs waiting for one write travel together); the
// finish reason and usage when the output is the last.
void AppendOutput(const RequestOutput& output, v1::GenerateResponse* response);
// The response as a RequestOutput, as the engine would have reported it (for GenerationResult).
RequestOutput OutputFromProto(const v1::GenerateResponse& response);

v1::FinishReason FinishReasonToProto(FinishReason reason);
FinishReason FinishReasonFromProto(v1::FinishReason reason);

}  // namespace doze::service
