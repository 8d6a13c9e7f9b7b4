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
    if (!SameAsLast(client)) {
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
  // Compared by owner: no reference is taken, so none is dropped under the caller's lock.
  bool SameAsLast(const std::shared_ptr<WorkerClient>& client) const {
    return !client_.owner_before(client) && !client.owner_before(client_);
  }

  std::weak_ptr<WorkerClient> client_;
  absl::Time since_ = absl::InfiniteFuture();  // the first failed check of the current run
};

}  // namespace doze::gateway
