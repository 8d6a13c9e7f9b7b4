// A table runner for lifecycle policy tests: each step sets the fake clock, feeds one event and checks the
// decisions that come back and the state the function is left in.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "gateway/common/clock.h"
#include "gateway/lifecycle/lifecycle_config.h"
#include "gateway/lifecycle/lifecycle_policy.h"

namespace doze::lifecycle::testing {

// An office schedule: weekdays 09:00-18:00 Shanghai time, prewarm 2m, idle stop after 5m, min_ready 1m.
// 2025-03-03 is a Monday.
inline constexpr const char* kOffice = R"yaml(
schedule:
  timezone: Asia/Shanghai
  resident:
    - { days: mon-fri, from: "09:00", to: "18:00" }
  prewarm: 2m
  idle_timeout: 5m
  idle_action: stop
  min_ready: 1m
)yaml";

// kStart is a request handed to the worker; kOpStart ... kOpWake are an operator's actions.
enum class Event {
  kTick,
  kQueue,
  kStart,
  kFinish,
  kReady,
  kStopped,
  kFailed,
  kArchive,
  kRestore,
  kOpStart,
  kOpStop,
  kOpSleep,
  kOpWake
};

struct Step {
  std::string at;  // "YYYY-MM-DD HH:MM:SS" in the schedule's zone, or with a " UTC" suffix.
  Event event;
  std::vector<Action> decisions;
  FunctionState state;
};

// Parses a lifecycle config from YAML whose single function is "fn"; aborts the test on errors.
LifecycleConfig ConfigFromYaml(const std::string& yaml);

// Runs `steps` against a fresh policy for "fn", reporting every mismatch with the step's index.
void RunSteps(const LifecycleConfig& config, const std::vector<Step>& steps, Ledger* ledger = nullptr,
              StateStore* store = nullptr);

// Parses a step time in `zone` (or UTC with a " UTC" suffix).
absl::Time StepTime(const std::string& at, absl::TimeZone zone);

}  // namespace doze::lifecycle::testing
