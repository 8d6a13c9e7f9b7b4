#include "gateway/lifecycle/trace.h"

#include <algorithm>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"

namespace doze::lifecycle {
namespace {

constexpr const char* kHeader = "timestamp,function,prompt_tokens,completion_tokens";
constexpr const char* kTimeFormat = "%Y-%m-%dT%H:%M:%E3S%Ez";

bool Digits(std::string_view text, size_t pos, size_t count, int* value) {
  if (pos + count > text.size()) return false;
  *value = 0;
  for (size_t i = pos; i < pos + count; ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
    *value = *value * 10 + (text[i] - '0');
  }
  return true;
}

// Reads what WriteTraceCsv writes ("2025-03-03T09:00:01.250+08:00") without absl::ParseTime's generality,
// which dominates the replay of a month's trace; anything else falls back to absl::ParseTime.
bool ParseFixedTimestamp(std::string_view text, absl::Time* out) {
  int year, month, day, hour, minute, second, millis, offset_hours, offset_minutes;
  if (text.size() != 29 || text[4] != '-' || text[7] != '-' || text[10] != 'T' || text[13] != ':' ||
      text[16] != ':' || text[19] != '.' || (text[23] != '+' && text[23] != '-') || text[26] != ':') {
    return false;
  }
  if (!Digits(text, 0, 4, &year) || !Digits(text, 5, 2, &month) || !Digits(text, 8, 2, &day) ||
      !Digits(text, 11, 2, &hour) || !Digits(text, 14, 2, &minute) || !Digits(text, 17, 2, &second) ||
      !Digits(text, 20, 3, &millis) || !Digits(text, 24, 2, &offset_hours) ||
      !Digits(text, 27, 2, &offset_minutes)) {
    return false;
  }
  const int offset_s = (text[23] == '-' ? -1 : 1) * (offset_hours * 3600 + offset_minutes * 60);
  const absl::CivilSecond civil(year, month, day, hour, minute, second);
  if (civil.month() != month || civil.day() != day || civil.hour() != hour) return false;
  *out = absl::FromCivil(civil, absl::UTCTimeZone()) - absl::Seconds(offset_s) + absl::Milliseconds(millis);
  return true;
}

bool ParseTimestamp(std::string_view text, absl::Time* out) {
  if (ParseFixedTimestamp(text, out)) return true;
  std::string error;
  return absl::ParseTime("%Y-%m-%dT%H:%M:%E*S%Ez", std::string(text), out, &error);
}

}  // namespace

absl::StatusOr<Trace> ReadTraceCsv(std::istream& in) {
  Trace trace;
  std::map<std::string, int, std::less<>> index;
  std::string line;
  if (!std::getline(in, line) || absl::StripSuffix(line, "\r") != kHeader) {
    return absl::InvalidArgumentError(absl::StrCat("trace line 1: expected the header \"", kHeader, "\""));
  }
  for (int line_number = 2; std::getline(in, line); ++line_number) {
    if (line.empty()) continue;
    std::vector<absl::string_view> fields = absl::StrSplit(absl::StripSuffix(line, "\r"), ',');
    TraceRequest request;
    if (fields.size() != 4 ||
        !ParseTimestamp(std::string_view(fields[0].data(), fields[0].size()), &request.at) ||
        fields[1].empty() || !absl::SimpleAtoi(fields[2], &request.prompt_tokens) ||
        !absl::SimpleAtoi(fields[3], &request.completion_tokens) || request.prompt_tokens < 0 ||
        request.completion_tokens < 0) {
      return absl::InvalidArgumentError(absl::StrCat("trace line ", line_number, ": expected ", kHeader));
    }
    auto it = index.find(fields[1]);
    if (it == index.end()) {
      it = index.emplace(std::string(fields[1]), static_cast<int>(trace.functions.size())).first;
      trace.functions.push_back(it->first);
    }
    request.function = it->second;
    trace.requests.push_back(request);
  }
  std::stable_sort(trace.requests.begin(), trace.requests.end(),
                   [](const TraceRequest& a, const TraceRequest& b) { return a.at < b.at; });
  return trace;
}

void WriteTraceCsv(const Trace& trace, absl::TimeZone zone, std::ostream& out) {
  out << kHeader << '\n';
  for (const TraceRequest& request : trace.requests) {
    out << absl::FormatTime(kTimeFormat, request.at, zone) << ',' << trace.functions[request.function] << ','
        << request.prompt_tokens << ',' << request.completion_tokens << '\n';
  }
}

}  // namespace doze::lifecycle
