// How long one worker has failed its health checks in a row: the dispatcher's measure of an unresponsive
// worker, fed by the checks of a suspect (a call on it broke) and of a worker with calls in flight alike.
#pragma once

#include <algorithm>
#include <memory>

#include "absl/time/time.h"
#include "gateway/workers/worker_client.h"

namespace doze::gateway {

class FailingChecks {
 public:
  // Records a check of `client` answered at `now`; returns how long its checks have failed in a row (zero
  // when this one answered SERVING). A check of another worker than the last starts the count afresh.
  absl::Duration Record(const std::shared_ptr<WorkerClient>& client, bool serving, absl::Time now) {
    if (!SameWorker(client_, client)) {
      client_ = client;
      since_ = absl::InfiniteFuture();
    }
    if (serving) {
      since_ = absl::InfiniteFuture();
      return absl::ZeroDuration();
    }
    since_ = std::min(since_, now);
    return now - since_;
  }

 private:
  std::weak_ptr<WorkerClient> client_;
  absl::Time since_ = absl::InfiniteFuture();  // the first failed check of the current run
};

}  // namespace doze::gateway
