#include "worker/service/worker_process.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "worker/common/logging.h"
#include "worker/service/engine_loop.h"
#include "worker/service/listen_address.h"
#include "worker/service/step_watchdog.h"
#include "worker/service/worker_lifecycle.h"
#include "worker/service/worker_model.h"
#include "worker/service/worker_service.h"

namespace doze::service {
namespace {

// After a drain no call is open, but an idle client connection would hold a graceful shutdown for as long as
// it is given; the deadline cuts that wait short.
constexpr auto kShutdownGrace = std::chrono::milliseconds(100);

// The step timeout `asked` resolves to on `backend` (WorkerOptions::step_timeout).
absl::Duration StepTimeout(absl::Duration asked, const std::string& backend) {
  if (asked >= absl::ZeroDuration()) return asked;
  return backend == "cuda" ? kCudaStepTimeout : absl::ZeroDuration();
}

// A hung engine thread: the process ends as after a CUDA error (the line printed is what the gateway
// reports).
[[noreturn]] void ExitOnStall(absl::Duration running) {
  std::fprintf(
      stderr,
      "doze-worker: the engine thread has been busy in one step or the work around it for %s, past the "
      "step timeout: exiting\n",
      absl::FormatDuration(absl::Trunc(running, absl::Microseconds(100))).c_str());
  std::fflush(stderr);
  std::abort();
}

// Set once: the drain is over (or the process must stop) and main() may shut down.
class StopSignal {
 public:
  void Notify() {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
    cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return stopped_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;
};

// Waits for SIGTERM or SIGINT (blocked everywhere by BlockTerminationSignals) and begins a drain.
void StartSignalThread(WorkerLifecycle* lifecycle, StopSignal* stop) {
  std::thread([lifecycle, stop] {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    int signal_number = 0;
    if (sigwait(&set, &signal_number) != 0) return;
    DOZE_LOG(INFO) << "signal " << signal_number << ": draining";
    lifecycle->BeginDrain([stop] { stop->Notify(); });
  }).detach();
}

class WorkerProcess {
 public:
  WorkerProcess(const WorkerOptions& options, StartupTimeline& timeline)
      : options_(options),
        timeline_(timeline),
        lifecycle_([this](bool serving) { SetHealth(serving); }),
        service_(&lifecycle_, &timeline_, [this] { stop_.Notify(); }) {}

  int Run() {
    if (!Listen()) return 1;
    StartSignalThread(&lifecycle_, &stop_);
    loop_.set_step_watchdog(&watchdog_);
    absl::Status loaded = loop_.Start([this] { return Load(); });
    if (!loaded.ok()) {
      std::cerr << "doze-worker: " << loaded.message() << std::endl;
      server_->Shutdown();
      return 1;
    }
    timeline_.Mark(StartupTimeline::Stage::kFirstStep);
    watchdog_.Arm(StepTimeout(options_.step_timeout, model_->backend()));
    service_.SetModel(&loop_, model_.get(),
                      WorkerInfo{options_.function, options_.model.model_dir, model_->backend()});
    lifecycle_.SetServing();
    timeline_.Mark(StartupTimeline::Stage::kReady);
    if (lifecycle_.state() == WorkerState::kServing) PrintReadyLine();
    stop_.Wait();
    server_->Shutdown(std::chrono::system_clock::now() + kShutdownGrace);
    loop_.Stop();
    return 0;
  }

 private:
  bool Listen() {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    // One server a port: gRPC's SO_REUSEPORT would let a second worker share it, each taking calls at random.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder.AddListeningPort(options_.listen, grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    if (!server_ || port_ == 0) {
      std::cerr << "doze-worker: cannot listen on " << options_.listen << std::endl;
      return false;
    }
    std::lock_guard<std::mutex> lock(health_mu_);
    health_ = server_->GetHealthCheckService();
    health_->SetServingStatus(v1::Worker::service_full_name(), serving_);
    health_->SetServingStatus(serving_);
    return true;
  }

  // Runs on the engine thread.
  absl::StatusOr<EngineParts> Load() {
    WorkerModel::Marks marks{[this] { timeline_.Mark(StartupTimeline::Stage::kCudaContext); },
                             [this] { timeline_.Mark(StartupTimeline::Stage::kWeights); }};
    absl::StatusOr<std::unique_ptr<WorkerModel>> model = WorkerModel::Load(options_.model, marks);
    if (!model.ok()) return model.status();
    model_ = *std::move(model);
    return EngineParts{&model_->runner(), [this] { return model_->NewEngine(); }};
  }

  // Called by the lifecycle under its lock; the server may not exist yet.
  void SetHealth(bool serving) {
    std::lock_guard<std::mutex> lock(health_mu_);
    serving_ = serving;
    if (health_ != nullptr) health_->SetServingStatus(serving);
  }

  void PrintReadyLine() {
    std::string listen = options_.listen;
    if (!absl::StartsWith(listen, "unix:"))
      listen = absl::StrCat(listen.substr(0, listen.rfind(':')), ":", port_);
    nlohmann::json line = {{"event", "ready"},
                           {"function", options_.function},
                           {"listen", listen},
                           {"pid", static_cast<int>(getpid())},
                           {"backend", model_->backend()},
                           {"startup_ms", timeline_.ToJson()}};
    std::cout << line.dump() << std::endl;
  }

  WorkerOptions options_;
  StartupTimeline& timeline_;
  StopSignal stop_;
  std::mutex health_mu_;
  grpc::HealthCheckServiceInterface* health_ = nullptr;
  bool serving_ = false;
  WorkerLifecycle lifecycle_;
  WorkerService service_;
  std::unique_ptr<WorkerModel> model_;
  StepWatchdog watchdog_{ExitOnStall};  // before loop_, whose thread reports to it
  EngineLoop loop_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace

void ExplainBusErrors() {
  struct sigaction action = {};
  action.sa_handler = [](int) {
    static constexpr char kMessage[] =
        "doze-worker: bus error (SIGBUS): a memory-mapped model file was truncated or replaced while the "
        "worker "
        "ran; model files must not change under a running worker\n";
    // Async-signal-safe; the handler is then reset, and the faulting access, run again, ends the process.
    [[maybe_unused]] ssize_t written = write(STDERR_FILENO, kMessage, sizeof(kMessage) - 1);
  };
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESETHAND;
  sigaction(SIGBUS, &action, nullptr);
}

void BlockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int RunWorker(const WorkerOptions& options, StartupTimeline& timeline) {
  for (absl::Status status :
       {CheckListenAddress(options.listen), ValidateModelInstanceOptions(options.model)}) {
    if (!status.ok()) {
      std::cerr << "doze-worker: " << status.message() << std::endl;
      return 2;
    }
  }
  WorkerProcess process(options, timeline);
  return process.Run();
}

}  // namespace doze::service
