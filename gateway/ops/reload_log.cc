#include "gateway/ops/reload_log.h"

#include <string>

namespace doze::gateway {

void ReloadLog::Record(absl::Time at, const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  ++count_;
  if (!status.ok()) ++failed_;
  last_at_ = at;
  last_status_ = status;
}

nlohmann::json ReloadLog::ToJson() const {
  absl::MutexLock lock(&mu_);
  nlohmann::json last = nullptr;
  if (last_at_.has_value()) {
    last = {{"at", absl::FormatTime(absl::RFC3339_full, *last_at_, absl::UTCTimeZone())},
            {"ok", last_status_.ok()},
            {"error", last_status_.ok() ? nlohmann::json(nullptr)
                                        : nlohmann::json(std::string(last_status_.message()))}};
  }
  return {{"count", count_}, {"failed", failed_}, {"last", last}};
}

}  // namespace doze::gateway
