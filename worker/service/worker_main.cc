// doze-worker: one worker process serving one business function over gRPC (started by the gateway).
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "worker/cli/engine_flags.h"
#include "worker/cli/options.h"
#include "worker/service/startup_timeline.h"
#include "worker/service/worker_process.h"

int main(int argc, char** argv) {
  // First of all, so that the timeline's first mark is the entry into main() and every thread started
  // later (gRPC's included) leaves SIGTERM to the drain.
  doze::service::StartupTimeline timeline;
  timeline.Mark(doze::service::StartupTimeline::Stage::kProcessStart);
  doze::service::BlockTerminationSignals();
  doze::service::ExplainBusErrors();
  // Debian's Abseil checks every Mutex acquisition (ours and gRPC's) against a global lock-order graph behind
  // one global lock, as in doze-gateway; the tests keep the check.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  namespace po = doze::cli::po;
  po::options_description options("doze-worker");
  options.add_options()("function", po::value<std::string>()->required(), "the business function served")(
      "listen", po::value<std::string>()->required(), "unix:PATH or HOST:PORT")(
      "step-timeout", po::value<double>()->default_value(-1),
      "seconds an engine step (with the engine thread's work around it) may run before the worker exits (0: "
      "never; default: 60 on CUDA, never on the CPU)");
  doze::cli::AddEngineOptions(options);
  po::variables_map vm;
  const char* usage =
      "doze-worker --model DIR --function NAME --listen unix:PATH|HOST:PORT [--backend auto|cuda|cpu] "
      "[--gpu-memory-fraction F] [--max-num-seqs N]";
  if (auto code = doze::cli::ParseOptions(argc, argv, options, vm, usage)) return *code;

  doze::service::WorkerOptions worker;
  worker.model = doze::cli::ModelInstanceOptionsFromFlags(vm);
  worker.function = vm["function"].as<std::string>();
  worker.listen = vm["listen"].as<std::string>();
  worker.step_timeout = absl::Seconds(vm["step-timeout"].as<double>());
  return doze::service::RunWorker(worker, timeline);
}
