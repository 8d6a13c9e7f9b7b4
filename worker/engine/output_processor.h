// Turns one request's sampled tokens into text and decides when it is done.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "worker/engine/request_output.h"
#include "worker/engine/sequence.h"
#include "worker/engine/stop_string_matcher.h"
#include "worker/engine/text_decoder.h"

namespace doze {

// Per request: the incremental decoder, the stop-string matcher and the stop rules. A stop token (an
// end-of-sequence id unless ignore_eos, or one of stop_token_ids) ends the output without adding its text.
class OutputProcessor {
 public:
  OutputProcessor(const SamplingParams& params, absl::Span<const int32_t> eos_token_ids,
                  std::unique_ptr<IncrementalTextDecoder> decoder);

  // Takes the token just appended to `seq`, appends the text it releases to `text_delta` and returns why the
  // output is finished (kNone while it goes on).
  FinishReason OnToken(const Sequence& seq, int32_t token_id, std::string* text_delta);

 private:
  bool IsStopToken(int32_t token_id) const;
  // Releases all held-back text at the end of the output.
  std::string FlushText();

  std::vector<int32_t> stop_token_ids_;
  int max_tokens_;
  std::unique_ptr<IncrementalTextDecoder> decoder_;
  StopStringMatcher stop_matcher_;
};

}  // namespace doze
