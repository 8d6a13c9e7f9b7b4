// When each stage of a worker's start-up ended, in milliseconds since the process was created.
#pragma once

#include <mutex>
#include <nlohmann/json.hpp>

#include "proto/worker.pb.h"

namespace doze::service {

// The origin is the kernel's record of the process's creation (/proc/self/stat, clock ticks: 10 ms steps),
// so the first figure includes exec and dynamic loading; the marks themselves are read from CLOCK_BOOTTIME.
// Thread-safe.
class StartupTimeline {
 public:
  enum class Stage { kProcessStart, kCudaContext, kWeights, kFirstStep, kReady };

  StartupTimeline();

  // Records that `stage` ended now.
  void Mark(Stage stage);
  // Milliseconds since the process was created.
  double NowMs() const;
  // {"process_start", "cuda_context", "weights", "first_step", "ready"}.
  nlohmann::json ToJson() const;
  void ToProto(v1::StartupTimeline* out) const;

 private:
  double origin_ms_;  // CLOCK_BOOTTIME of the process's creation
  mutable std::mutex mu_;
  double marks_ms_[5] = {0, 0, 0, 0, 0};
};

}  // namespace doze::service
