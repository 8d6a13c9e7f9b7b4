// A worker process's life: listen, load, warm up, serve, drain, exit.
#pragma once

#include <string>

#include "absl/time/time.h"
#include "worker/runtime/model_instance.h"
#include "worker/service/startup_timeline.h"

namespace doze::service {

struct WorkerOptions {
  ModelInstanceOptions model;
  std::string function;
  std::string listen;  // unix:PATH or HOST:PORT (port 0: any free port, reported in the ready line)
  // A step (or the engine thread's work around it: admissions, the outputs' hand-over, sleep, wake) running
  // longer ends the process (StepWatchdog); zero: never; negative: the backend's default
  // (kCudaStepTimeout on CUDA, never on the CPU, whose prefill steps may take minutes).
  absl::Duration step_timeout = absl::Seconds(-1);
};

// A CUDA step takes milliseconds; one still running after this has hung.
inline constexpr absl::Duration kCudaStepTimeout = absl::Seconds(60);

// Blocks SIGTERM and SIGINT in the calling thread and every thread it starts later; they then begin a drain
// instead of killing the process. Call first thing in main().
void BlockTerminationSignals();

// Makes a bus error (SIGBUS: a memory-mapped model file truncated or replaced while the worker runs) say so
// on stderr before the process dies of it, as it still does.
void ExplainBusErrors();

// Serves until drained (a Drain call, SIGTERM or SIGINT) and returns the exit code: 0 after a drain, 1 when
// the server cannot listen or the model cannot be loaded. Listens first (health NOT_SERVING), loads the model
// on the engine thread, runs one warm-up step, then reports SERVING and prints one JSON line on stdout:
// {"event": "ready", "function", "listen", "pid", "backend", "startup_ms": {...}}.
int RunWorker(const WorkerOptions& options, StartupTimeline& timeline);

}  // namespace doze::service
