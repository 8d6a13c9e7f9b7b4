#include "gateway/lifecycle/trace_synth.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"

namespace doze::lifecycle {
namespace {

// One function of the office: its peak rate and the shape of its requests.
struct OfficeFunction {
  const char* name;
  double peak_per_s;       // Weekday arrival rate at the morning peak.
  double per_weekday;      // Or: a fixed number of requests per weekday, spread over office hours (rare use).
  double prompt_mean;      // Tokens, log-normal.
  double completion_mean;  // Tokens, log-normal, capped at the function's max_tokens.
  int completion_cap;
};

constexpr OfficeFunction kOffice[] = {
    {"customer_service", 0.8, 0, 320, 300, 512},
    {"copy_polish", 0.6, 0, 260, 200, 256},
    {"table_parse", 0, 3, 1200, 300, 384},
};

// Weekday demand relative to the morning peak, by local hour: people arrive from 08:00, lunch is 12:00-13:30,
// the office empties after 18:00, and a few people work late.
double WeekdayShape(double hour) {
  if (hour < 7) return 0.0002;
  if (hour < 8) return 0.01;
  if (hour < 9) return 0.3;
  if (hour < 11.5) return 1.0;
  if (hour < 12) return 0.7;
  if (hour < 13.5) return 0.25;
  if (hour < 17.5) return 0.9;
  if (hour < 18) return 0.5;
  if (hour < 19) return 0.12;
  if (hour < 20) return 0.02;
  if (hour < 23) return 0.0015;
  return 0.0003;
}

// Weekends see a small fraction of the weekday daytime demand.
constexpr double kWeekendFactor = 0.002;

int Tokens(std::mt19937_64& rng, double mean, int cap) {
  // Log-normal with sigma 0.5: mean = exp(mu + sigma^2 / 2).
  std::lognormal_distribution<double> dist(std::log(mean) - 0.125, 0.5);
  return std::clamp(static_cast<int>(dist(rng)), 1, cap);
}

void AddMinute(const OfficeFunction& function, int index, absl::Time minute_start, double rate_per_s,
               std::mt19937_64& rng, Trace* trace) {
  std::poisson_distribution<int> arrivals(rate_per_s * 60);
  std::uniform_real_distribution<double> offset_s(0, 60);
  for (int n = arrivals(rng); n > 0; --n) {
    const absl::Time at = minute_start + absl::Milliseconds(std::floor(offset_s(rng) * 1000));
    trace->requests.push_back({at, index, Tokens(rng, function.prompt_mean, 8192),
                               Tokens(rng, function.completion_mean, function.completion_cap)});
  }
}

}  // namespace

absl::StatusOr<Trace> SynthesizeTrace(const SynthOptions& options) {
  if (options.profile != "office") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown profile \"", options.profile, "\" (known: office)"));
  }
  if (options.days <= 0) return absl::InvalidArgumentError("days must be positive");
  Trace trace;
  std::mt19937_64 rng(options.seed);
  for (const OfficeFunction& function : kOffice) trace.functions.push_back(function.name);
  for (int d = 0; d < options.days; ++d) {
    const absl::CivilDay day = options.start + d;
    const bool weekend = absl::GetWeekday(day) >= absl::Weekday::saturday;
    for (int minute = 0; minute < 24 * 60; ++minute) {
      const absl::Time start = absl::FromCivil(absl::CivilMinute(day) + minute, options.zone);
      const double hour = minute / 60.0;
      double shape = WeekdayShape(hour);
      if (weekend) shape = hour >= 9 && hour < 18 ? kWeekendFactor : 0.0001;
      for (int i = 0; i < static_cast<int>(std::size(kOffice)); ++i) {
        const OfficeFunction& function = kOffice[i];
        double rate = function.peak_per_s * shape;
        // Rare functions: a few requests per weekday, during office hours only.
        if (function.per_weekday > 0)
          rate = weekend || hour < 9 || hour >= 18 ? 0 : function.per_weekday / 32400.0;
        if (rate > 0) AddMinute(function, i, start, rate, rng, &trace);
      }
    }
  }
  std::stable_sort(trace.requests.begin(), trace.requests.end(),
                   [](const TraceRequest& a, const TraceRequest& b) { return a.at < b.at; });
  return trace;
}

}  // namespace doze::lifecycle
