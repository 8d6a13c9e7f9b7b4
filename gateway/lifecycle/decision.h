// What the lifecycle policy asks the gateway to do, and what the gateway tells the policy it observed.
#pragma once

#include <string>

namespace doze::lifecycle {

// The policy's decisions. Start, stop, sleep and wake are verbs of the worker supervisor; archive and restore
// report a change of the function's archive mark (already applied and persisted by the policy); reject means
// "answer 409 to every request now queued for this function and drop them from its queue".
enum class Action { kStart, kStop, kSleep, kWake, kArchive, kRestore, kReject };

// Returns the lower-case name of `action` ("start", "stop", ...).
const char* ActionName(Action action);

struct Decision {
  Action action;
  std::string function;
  std::string reason;  // Why, in words, e.g. "idle 5m outside resident windows".
};

// What the supervisor observed of a worker after a decision (or on its own, e.g. a crash).
enum class WorkerEvent {
  kReady,    // Started or woken, and serving.
  kStopped,  // The process has exited after a stop.
  kFailed,   // Failed to start or wake, or died.
};

}  // namespace doze::lifecycle
