// Checks on the values a checkpoint's weights hold, beside the loader's checks of names, types and shapes.
#pragma once

#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "worker/model/model_weights.h"

namespace doze {

// The NaN and infinite elements of one tensor: how many, and the first one's index (-1 when none).
struct NonFiniteCount {
  int64_t count = 0;
  int64_t first = -1;
};

NonFiniteCount CountNonFinite(const TensorView& tensor);

// A model whose weights hold a NaN or an infinity writes tokens without meaning and without an error: it is
// refused, naming (after `source`) the first tensor that holds one, where, and how many it holds.
absl::Status CheckWeightsFinite(const ModelWeights& weights, std::string_view source);

}  // namespace doze
