#include "tests/gateway/lifecycle/policy_test_util.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "yaml-cpp/yaml.h"

namespace doze::lifecycle::testing {

LifecycleConfig ConfigFromYaml(const std::string& yaml) {
  absl::StatusOr<LifecycleConfig> config = ParseLifecycleConfig(YAML::Load(yaml), {{"fn", YAML::Node()}});
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *config : LifecycleConfig{};
}

absl::Time StepTime(const std::string& at, absl::TimeZone zone) {
  std::string text = at;
  if (absl::EndsWith(text, " UTC")) {
    text.resize(text.size() - 4);
    zone = absl::UTCTimeZone();
  }
  absl::Time t;
  std::string error;
  EXPECT_TRUE(absl::ParseTime("%Y-%m-%d %H:%M:%S", text, zone, &t, &error)) << at << ": " << error;
  return t;
}

namespace {

std::string Names(const std::vector<Decision>& decisions) {
  std::vector<std::string> names;
  for (const Decision& d : decisions) names.push_back(ActionName(d.action));
  return absl::StrJoin(names, ",");
}

std::string Names(const std::vector<Action>& actions) {
  std::vector<std::string> names;
  for (Action a : actions) names.push_back(ActionName(a));
  return absl::StrJoin(names, ",");
}

std::vector<Decision> Operate(LifecyclePolicy& policy, OperatorAction action) {
  absl::StatusOr<std::vector<Decision>> decisions = policy.Operate("fn", action);
  EXPECT_TRUE(decisions.ok()) << OperatorActionName(action) << ": " << decisions.status();
  return decisions.ok() ? *decisions : std::vector<Decision>{};
}

std::vector<Decision> Feed(LifecyclePolicy& policy, Event event, absl::Time now) {
  switch (event) {
    case Event::kTick:
      return policy.Tick();
    case Event::kQueue:
      return policy.OnRequestQueued("fn");
    case Event::kStart:
      policy.OnRequestStarted("fn", now);
      return {};
    case Event::kFinish:
      return policy.OnRequestFinished("fn");
    case Event::kReady:
      return policy.OnWorkerEvent("fn", WorkerEvent::kReady, "");
    case Event::kStopped:
      return policy.OnWorkerEvent("fn", WorkerEvent::kStopped, "");
    case Event::kFailed:
      return policy.OnWorkerEvent("fn", WorkerEvent::kFailed, "CUDA out of memory");
    case Event::kArchive:
      return *policy.Archive("fn", "by test");
    case Event::kRestore:
      return *policy.Restore("fn");
    case Event::kOpStart:
      return Operate(policy, OperatorAction::kStart);
    case Event::kOpStop:
      return Operate(policy, OperatorAction::kStop);
    case Event::kOpSleep:
      return Operate(policy, OperatorAction::kSleep);
    case Event::kOpWake:
      return Operate(policy, OperatorAction::kWake);
  }
  return {};
}

}  // namespace

void RunSteps(const LifecycleConfig& config, const std::vector<Step>& steps, Ledger* ledger,
              StateStore* store) {
  const absl::TimeZone zone = config.functions.at("fn").timezone;
  gateway::FakeClock clock(StepTime(steps.front().at, zone));
  Ledger own_ledger;
  if (ledger == nullptr) ledger = &own_ledger;
  LifecyclePolicy policy(config, &clock, ledger, store);
  ASSERT_TRUE(policy.Load().ok());
  for (size_t i = 0; i < steps.size(); ++i) {
    const Step& step = steps[i];
    const absl::Time at = StepTime(step.at, zone);
    ASSERT_GE(at, clock.Now()) << "step " << i << " goes back in time";
    clock.Advance(at - clock.Now());
    std::vector<Decision> decisions = Feed(policy, step.event, at);
    EXPECT_EQ(Names(decisions), Names(step.decisions)) << "step " << i << " at " << step.at;
    EXPECT_EQ(FunctionStateName(policy.StateOf("fn")), std::string(FunctionStateName(step.state)))
        << "step " << i << " at " << step.at;
  }
}

}  // namespace doze::lifecycle::testing
