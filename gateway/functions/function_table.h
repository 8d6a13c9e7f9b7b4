// The functions the gateway serves: each one's definition, worker supervisor, dispatcher and metrics. The
// definitions change on SIGHUP; handlers look functions up concurrently. Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "gateway/config/config.h"
#include "gateway/dispatch/dispatcher.h"
#include "gateway/ops/function_metrics.h"
#include "gateway/workers/worker_supervisor.h"

namespace doze::gateway {

// One function at run time.
class FunctionRuntime {
 public:
  FunctionRuntime(std::shared_ptr<const FunctionConfig> config, std::shared_ptr<WorkerSupervisor> supervisor,
                  std::shared_ptr<FunctionMetrics> metrics)
      : name_(config->name),
        config_(std::move(config)),
        supervisor_(std::move(supervisor)),
        metrics_(std::move(metrics)) {}

  // Returns the function's name.
  const std::string& name() const { return name_; }

  // Returns the current definition.
  std::shared_ptr<const FunctionConfig> config() const {
    absl::MutexLock lock(&mu_);
    return config_;
  }

  // Replaces the definition (reload).
  void set_config(std::shared_ptr<const FunctionConfig> config) {
    absl::MutexLock lock(&mu_);
    config_ = std::move(config);
  }

  WorkerSupervisor& supervisor() const { return *supervisor_; }
  const std::shared_ptr<WorkerSupervisor>& supervisor_ptr() const { return supervisor_; }
  Dispatcher& dispatcher() const { return *dispatcher_; }
  FunctionMetrics& metrics() const { return *metrics_; }
  const std::shared_ptr<FunctionMetrics>& metrics_ptr() const { return metrics_; }

  // Sets the dispatcher (made after the runtime, since it records into the metrics).
  void set_dispatcher(std::shared_ptr<Dispatcher> dispatcher) { dispatcher_ = std::move(dispatcher); }

 private:
  const std::string name_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const FunctionConfig> config_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<WorkerSupervisor> supervisor_;
  std::shared_ptr<FunctionMetrics> metrics_;  // shared with the dispatcher and the supervisor's observer
  std::shared_ptr<Dispatcher> dispatcher_;
};

// Functions by name.
class FunctionTable {
 public:
  // Returns the function, or nullptr.
  std::shared_ptr<FunctionRuntime> Find(const std::string& name) const {
    absl::MutexLock lock(&mu_);
    auto it = functions_.find(name);
    return it == functions_.end() ? nullptr : it->second;
  }

  // Returns every function, by name.
  std::vector<std::shared_ptr<FunctionRuntime>> All() const {
    absl::MutexLock lock(&mu_);
    std::vector<std::shared_ptr<FunctionRuntime>> all;
    for (const auto& [name, function] : functions_) all.push_back(function);
    return all;
  }

  // Adds or replaces a function.
  void Put(std::shared_ptr<FunctionRuntime> function) {
    absl::MutexLock lock(&mu_);
    functions_[function->name()] = std::move(function);
  }

  // Removes a function; returns it (nullptr when unknown).
  std::shared_ptr<FunctionRuntime> Remove(const std::string& name) {
    absl::MutexLock lock(&mu_);
    auto it = functions_.find(name);
    if (it == functions_.end()) return nullptr;
    std::shared_ptr<FunctionRuntime> removed = std::move(it->second);
    functions_.erase(it);
    return removed;
  }

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<FunctionRuntime>> functions_ ABSL_GUARDED_BY(mu_);
};

}  // namespace doze::gateway
