#include "tests/gateway/prometheus_text.h"

#include <map>
#include <regex>
#include <set>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace doze::gateway::testing {

std::string CheckPrometheusText(const std::string& text) {
  static const std::regex kComment(R"(# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*))");
  static const std::regex kSample(
      R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*")(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*")*\})? ([^ ]+))");
  static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary", "untyped"};
  std::map<std::string, std::string> types;
  std::map<std::string, double> last_bucket;  // Series without `le` -> last cumulative count.
  if (text.empty() || text.back() != '\n') return "does not end with a newline";
  for (absl::string_view line_view : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::string line(line_view);
    std::smatch match;
    if (absl::StartsWith(line, "#")) {
      if (!std::regex_match(line, match, kComment)) return "bad comment: " + line;
      if (match[1] == "TYPE") {
        if (!kTypes.contains(match[3])) return "bad type: " + line;
        types[match[2]] = match[3];
      }
      continue;
    }
    if (!std::regex_match(line, match, kSample)) return "bad sample: " + line;
    std::string name = match[1];
    double value = 0;
    std::string number = match[7];
    if (number != "+Inf" && number != "-Inf" && number != "NaN" && !absl::SimpleAtod(number, &value)) {
      return "bad value: " + line;
    }
    std::string family = name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      if (absl::EndsWith(name, suffix) && types.contains(name.substr(0, name.size() - strlen(suffix)))) {
        family = name.substr(0, name.size() - strlen(suffix));
      }
    }
    if (!types.contains(family)) return "sample of an undeclared family: " + line;
    if (absl::EndsWith(name, "_bucket")) {
      std::string labels = match[2];
      std::string series = name + std::regex_replace(labels, std::regex(R"(,?le="[^"]*")"), "");
      if (last_bucket.contains(series) && value < last_bucket[series])
        return "buckets not cumulative: " + line;
      last_bucket[series] = absl::StrContains(labels, "le=\"+Inf\"") ? -1 : value;
    }
  }
  for (const auto& [series, last] : last_bucket) {
    if (last != -1) return "histogram without a +Inf bucket: " + series;
  }
  return "";
}

}  // namespace doze::gateway::testing
