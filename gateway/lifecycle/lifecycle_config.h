// The lifecycle policy's configuration: billing, the schedule of each function and the simulator's
// service-time model, validated once from the gateway's YAML into these typed structs.
#pragma once

#include <array>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "yaml-cpp/yaml.h"

namespace doze::lifecycle {

// `billing:`: what one GPU-hour costs.
struct BillingConfig {
  double gpu_hour_price = 0.0;
  std::string currency = "USD";
};

// One entry of `schedule.resident`: a daily window in the schedule's time zone. `days` names the days on
// which a window opens; a window whose `to` is not after `from` ends on the next day (it crosses midnight).
struct ResidentWindow {
  std::array<bool, 7> days{};  // Indexed Monday = 0 ... Sunday = 6.
  int from_minute = 0;         // Minutes after local midnight, [0, 1440).
  int to_minute = 0;           // Minutes after local midnight, [0, 1440]; 1440 is "24:00".

  // Returns e.g. "mon-fri 09:00-18:00" for status pages and transition reasons.
  std::string ToString() const;
};

// What an idle worker outside its windows does.
enum class IdleAction { kStop, kSleep };

// What a request for an archived function does.
enum class ArchivedRequestAction { kRestore, kReject };

// `schedule.archive:`: archive functions that are barely used.
struct ArchiveRule {
  bool enabled = false;  // Only when the key is present.
  double below_utilization = 0.05;
  absl::Duration window = absl::Hours(7 * 24);
  ArchivedRequestAction on_request = ArchivedRequestAction::kRestore;
};

// `schedule:` (or `functions.NAME.schedule:` over it). The defaults are doze without a schedule: purely on
// demand.
struct SchedulePolicy {
  std::string timezone_name = "UTC";
  absl::TimeZone timezone = absl::UTCTimeZone();
  std::vector<ResidentWindow> resident;
  absl::Duration prewarm = absl::ZeroDuration();
  absl::Duration idle_timeout = absl::Minutes(5);
  IdleAction idle_action = IdleAction::kStop;
  absl::Duration min_ready = absl::ZeroDuration();
  ArchiveRule archive;
};

// `simulation:`: the service-time model of `doze simulate`; defaults are doze's measured figures.
struct SimulationModel {
  absl::Duration cold_start = absl::Milliseconds(600);
  absl::Duration wake = absl::Milliseconds(50);
  double prefill_tokens_per_s = 150000.0;
  double decode_tokens_per_s = 2000.0;
};

// Everything the lifecycle policy, the ledger and the simulator read.
struct LifecycleConfig {
  BillingConfig billing;
  SchedulePolicy default_schedule;                  // `schedule:`, used for totals and the simulated period.
  std::map<std::string, SchedulePolicy> functions;  // Every function, its overrides applied.
  std::string state_file;                           // Empty: nothing persists (simulator, tests).
  SimulationModel simulation;
};

// One function of the gateway's configuration: its name and its YAML node (which may hold `schedule:`).
struct FunctionNode {
  std::string name;
  YAML::Node node;
};

// Parses the lifecycle keys of the gateway's YAML root and the schedule overrides of `functions`. Errors name
// the key path, e.g. "schedule.resident[0].from: expected HH:MM, got \"9am\"".
absl::StatusOr<LifecycleConfig> ParseLifecycleConfig(const YAML::Node& root,
                                                     const std::vector<FunctionNode>& functions);

// As above, taking the functions from the root's `functions:` mapping.
absl::StatusOr<LifecycleConfig> ParseLifecycleConfig(const YAML::Node& root);

// Reads a YAML file and parses it as above; errors start with the file name.
absl::StatusOr<LifecycleConfig> LoadLifecycleConfigFile(const std::string& path);

}  // namespace doze::lifecycle
