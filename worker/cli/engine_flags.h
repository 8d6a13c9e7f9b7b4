// The flags that choose and size a served model: --model, --backend, --max-num-seqs, --kv-cache-tokens, ...
#pragma once

#include "worker/cli/options.h"
#include "worker/runtime/model_instance.h"

namespace doze::cli {

// Adds --model (required), --backend, --max-num-seqs, --max-num-batched-tokens, --kv-cache-tokens,
// --gpu-memory-fraction, --threads and --async-scheduling.
void AddEngineOptions(po::options_description& options);

// Reads them back.
ModelInstanceOptions ModelInstanceOptionsFromFlags(const po::variables_map& vm);

}  // namespace doze::cli
