// The GPU-time ledger: for each function, how many seconds its worker held a GPU and what for, in hourly
// buckets, plus its cold starts and the queue wait they caused. Busy means at least one request in flight;
// idle means ready (or draining) with nothing in flight; warming means starting or waking; off is everything
// else (stopped, sleeping with its GPU memory freed, archived, failed). Off time is kept too, because
// always-on would have paid for it. With a StateStore, Flush() writes what changed so that a restart loses
// nothing.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace doze::lifecycle {

class StateStore;

// How a function's worker is using the GPU.
enum class GpuUse { kOff, kWarming, kIdle, kBusy };

// Seconds of one function in one hour.
struct LedgerBucket {
  double busy_s = 0;
  double idle_s = 0;
  double warming_s = 0;
  double off_s = 0;
  int64_t cold_starts = 0;
  // The billed seconds (busy, idle, warming) priced at the GPU-hour price in force as they passed; NaN for a
  // bucket read from a state file written before prices were kept (Load prices it at today's price).
  double cost = 0;
};

// A request that waited for a worker to start or wake.
struct ColdWait {
  absl::Time at;
  double wait_s;
};

// Sums over a period.
struct LedgerTotals {
  double busy_s = 0;
  double idle_s = 0;
  double warming_s = 0;
  double off_s = 0;
  int64_t cold_starts = 0;
  double cost = 0;  // at the prices in force as the seconds passed
  std::vector<double> cold_waits_s;

  // Seconds billed: busy, idle and warming.
  double gpu_s() const { return busy_s + idle_s + warming_s; }
  // Seconds covered, billed or not: what an always-on worker would have been billed.
  double elapsed_s() const { return gpu_s() + off_s; }
  // Adds `other` into this.
  void Merge(const LedgerTotals& other);
};

class Ledger {
 public:
  // `store` may be null (simulator, tests): nothing persists.
  explicit Ledger(StateStore* store = nullptr);

  // Reads what the store holds; call once, before any other use (after the first SetGpuHourPrice).
  absl::Status Load();

  // The price of a billed GPU hour from now on; seconds accrued before it keep the price they had (call
  // Settle first, so that the open intervals are priced at the old price up to now).
  void SetGpuHourPrice(double price) { gpu_hour_price_ = price; }

  // Closes the current interval of `function` at `now` and opens one of `use`; the first call starts
  // tracking.
  void SetUse(const std::string& function, GpuUse use, absl::Time now);

  // Closes the open interval of `function` at `now` and accrues nothing more until its next SetUse (a
  // function removed from the configuration).
  void StopTracking(const std::string& function, absl::Time now);

  // Counts a cold start (a start or wake that a request waits for).
  void RecordColdStart(const std::string& function, absl::Time at);

  // Records how long a request queued at `at - wait` waited for its worker.
  void RecordColdWait(const std::string& function, absl::Time at, absl::Duration wait);

  // Closes every open interval at `now` (reopening it), so sums include the time up to `now`.
  void Settle(absl::Time now);

  // Returns the busy seconds of `function` in the hourly buckets that start in [floor_hour(from), to).
  double BusySeconds(const std::string& function, absl::Time from, absl::Time to) const;

  // Returns when tracking of `function` began; InfiniteFuture when never.
  absl::Time TrackingSince(const std::string& function) const;

  // Returns the sums of `function` over the hourly buckets in [floor_hour(from), to), cold waits in [from,
  // to).
  LedgerTotals Totals(const std::string& function, absl::Time from, absl::Time to) const;

  // Writes changed buckets and new cold waits to the store (no-op without one).
  absl::Status Flush();

 private:
  struct FunctionAccount {
    absl::Time tracking_since = absl::InfiniteFuture();
    GpuUse use = GpuUse::kOff;
    absl::Time use_since = absl::InfiniteFuture();
    std::map<int64_t, LedgerBucket> buckets;  // Keyed by the Unix second at which the hour starts.
    std::vector<ColdWait> cold_waits;
    std::set<int64_t> dirty_hours;  // Changed since the last flush (only with a store).
    size_t flushed_waits = 0;
  };

  // Adds `[from, to)` spent in `use` to the buckets it spans.
  void Accrue(FunctionAccount& account, GpuUse use, absl::Time from, absl::Time to);
  // Returns the bucket of the hour holding `t`, marking it changed.
  LedgerBucket& BucketAt(FunctionAccount& account, absl::Time t);

  StateStore* store_;
  double gpu_hour_price_ = 0;
  std::map<std::string, FunctionAccount> accounts_;
  std::vector<std::string> new_functions_;  // Tracking began since the last flush.
};

}  // namespace doze::lifecycle
