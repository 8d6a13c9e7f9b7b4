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
