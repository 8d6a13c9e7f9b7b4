// Synthetic request traces shaped like the article's office: morning and afternoon peaks, a lunch dip, an
// evening tail, a thin night trickle and quiet weekends, over three functions (customer_service, copy_polish,
// and the rarely used table_parse).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "gateway/lifecycle/trace.h"

namespace doze::lifecycle {

struct SynthOptions {
  std::string profile = "office";
  int days = 30;
  uint64_t seed = 1;
  absl::CivilDay start = absl::CivilDay(2025, 3, 3);    // A Monday.
  absl::TimeZone zone = absl::FixedTimeZone(8 * 3600);  // The office's local time (Asia/Shanghai).
};

// Returns the trace of `options`; the same options always give the same trace.
absl::StatusOr<Trace> SynthesizeTrace(const SynthOptions& options);

}  // namespace doze::lifecycle
