#include "worker/service/startup_timeline.h"

#include <time.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "worker/common/proc_stat.h"

namespace doze::service {
namespace {

double BootTimeMs() {
  timespec now{};
  clock_gettime(CLOCK_BOOTTIME, &now);
  return static_cast<double>(now.tv_sec) * 1e3 + static_cast<double>(now.tv_nsec) * 1e-6;
}

// Field 22 of /proc/self/stat: the process's creation in clock ticks since boot.
double ProcessCreationMs() {
  absl::StatusOr<std::vector<std::string>> fields = ProcStatFields(0);
  constexpr size_t kStartTime = 22 - 3;
  if (!fields.ok() || fields->size() <= kStartTime) return BootTimeMs();
  return std::stod((*fields)[kStartTime]) * 1e3 / static_cast<double>(sysconf(_SC_CLK_TCK));
}

}  // namespace

StartupTimeline::StartupTimeline() : origin_ms_(ProcessCreationMs()) {}

void StartupTimeline::Mark(Stage stage) {
  const double now = NowMs();
  std::lock_guard<std::mutex> lock(mu_);
  marks_ms_[static_cast<int>(stage)] = now;
}

double StartupTimeline::NowMs() const { return BootTimeMs() - origin_ms_; }

nlohmann::json StartupTimeline::ToJson() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {{"process_start", marks_ms_[0]},
          {"cuda_context", marks_ms_[1]},
          {"weights", marks_ms_[2]},
          {"first_step", marks_ms_[3]},
          {"ready", marks_ms_[4]}};
}

void StartupTimeline::ToProto(v1::StartupTimeline* out) const {
  std::lock_guard<std::mutex> lock(mu_);
  out->set_process_start_ms(marks_ms_[0]);
  out->set_cuda_context_ms(marks_ms_[1]);
  out->set_weights_ms(marks_ms_[2]);
  out->set_first_step_ms(marks_ms_[3]);
  out->set_ready_ms(marks_ms_[4]);
}

}  // namespace doze::service
