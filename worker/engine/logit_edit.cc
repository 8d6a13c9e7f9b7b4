#include "worker/engine/logit_edit.h"

namespace doze {

void ApplyLogitEdits(absl::Span<const LogitEdit> edits, absl::Span<float> logits) {
  for (const LogitEdit& e : edits) {
    float v = logits[e.token_id];
    if (e.bias != 0.0f) v += e.bias;
    if (e.repetition != 1.0f) v = v > 0 ? v / e.repetition : v * e.repetition;
    if (e.subtract != 0.0f) v -= e.subtract;
    logits[e.token_id] = v;
  }
}

}  // namespace doze
