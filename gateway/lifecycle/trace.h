// A request trace: one row per request, `timestamp,function,prompt_tokens,completion_tokens`, with RFC 3339
// timestamps carrying their UTC offset (e.g. 2025-03-03T09:00:01.250+08:00).
#pragma once

#include <istream>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace doze::lifecycle {

struct TraceRequest {
  absl::Time at;
  int function;  // Index into Trace::functions.
  int prompt_tokens;
  int completion_tokens;
};

struct Trace {
  std::vector<std::string> functions;
  std::vector<TraceRequest> requests;  // Sorted by time.
};

// Reads a CSV trace (header line first); rows may come in any order and are sorted. Errors name the line.
absl::StatusOr<Trace> ReadTraceCsv(std::istream& in);

// Writes `trace` as CSV with timestamps in `zone`.
void WriteTraceCsv(const Trace& trace, absl::TimeZone zone, std::ostream& out);

}  // namespace doze::lifecycle
