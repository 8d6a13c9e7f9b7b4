#include "worker/engine/output_processor.h"

#include <algorithm>
#include <utility>

namespace doze {

std::string_view FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kAbort:
      return "abort";
    case FinishReason::kNone:
      break;
  }
  return "";
}

OutputProcessor::OutputProcessor(const SamplingParams& params, absl::Span<const int32_t> eos_token_ids,
                                 std::unique_ptr<IncrementalTextDecoder> decoder)
    : stop_token_ids_(params.stop_token_ids),
      max_tokens_(params.max_tokens),
      decoder_(std::move(decoder)),
      stop_matcher_(params.stop) {
  if (!params.ignore_eos)
    stop_token_ids_.insert(stop_token_ids_.end(), eos_token_ids.begin(), eos_token_ids.end());
}

bool OutputProcessor::IsStopToken(int32_t token_id) const {
  return std::find(stop_token_ids_.begin(), stop_token_ids_.end(), token_id) != stop_token_ids_.end();
}

FinishReason OutputProcessor::OnToken(const Sequence& seq, int32_t token_id, std::string* text_delta) {
  if (IsStopToken(token_id)) {
    text_delta->append(FlushText());
    return FinishReason::kStop;
  }
  stop_matcher_.Push(decoder_->Push(token_id), text_delta);
  if (stop_matcher_.stopped()) return FinishReason::kStop;
  if (seq.num_output_tokens() >= max_tokens_) {
    text_delta->append(FlushText());
    return stop_matcher_.stopped() ? FinishReason::kStop : FinishReason::kLength;
  }
  return FinishReason::kNone;
}

std::string OutputProcessor::FlushText() {
  std::string text = stop_matcher_.Push(decoder_->Flush());
  if (!stop_matcher_.stopped()) text += stop_matcher_.Flush();
  return text;
}

}  // namespace doze
