// The configuration reloads (SIGHUP) so far, for /ops/status: how many, how many failed, and the last one's
// time and error. Thread-safe.
#pragma once

#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace doze::gateway {

class ReloadLog {
 public:
  // Records a reload that ended at `at` with `status`.
  void Record(absl::Time at, const absl::Status& status);

  // {"count", "failed", "last": {"at", "ok", "error"} or null before the first}.
  nlohmann::json ToJson() const;

 private:
  mutable absl::Mutex mu_;
  int count_ ABSL_GUARDED_BY(mu_) = 0;
  int failed_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<absl::Time> last_at_ ABSL_GUARDED_BY(mu_);
  absl::Status last_status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace doze::gateway
