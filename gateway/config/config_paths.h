// What --check-config verifies beyond the keys themselves: that the files the configuration names are there
// (the model folder's config.json, tokenizer.json and weights; the worker binary, executable; the API key
// file, with at least one key).
#pragma once

#include <string>

#include "absl/status/status.h"
#include "gateway/config/config.h"

namespace doze::gateway {

// The worker binary an empty workers.binary means: doze-worker next to this executable.
std::string DefaultWorkerBinary();

// OK, or InvalidArgument listing every missing file, each under its key path ("model.path: ...").
absl::Status CheckConfigPaths(const Config& config);

}  // namespace doze::gateway
