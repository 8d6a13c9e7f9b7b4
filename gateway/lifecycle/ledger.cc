#include "gateway/lifecycle/ledger.h"

#include <algorithm>
#include <cmath>

#include "gateway/lifecycle/state_store.h"
#include "worker/common/status_macros.h"

namespace doze::lifecycle {
namespace {

constexpr int64_t kSecondsPerHour = 3600;

int64_t HourOf(absl::Time t) {
  const int64_t seconds = absl::ToUnixSeconds(t);
  return seconds - ((seconds % kSecondsPerHour) + kSecondsPerHour) % kSecondsPerHour;
}

double* FieldOf(LedgerBucket& bucket, GpuUse use) {
  switch (use) {
    case GpuUse::kBusy:
      return &bucket.busy_s;
    case GpuUse::kIdle:
      return &bucket.idle_s;
    case GpuUse::kWarming:
      return &bucket.warming_s;
    case GpuUse::kOff:
      break;
  }
  return &bucket.off_s;
}

}  // namespace

void LedgerTotals::Merge(const LedgerTotals& other) {
  busy_s += other.busy_s;
  idle_s += other.idle_s;
  warming_s += other.warming_s;
  off_s += other.off_s;
  cold_starts += other.cold_starts;
  cost += other.cost;
  cold_waits_s.insert(cold_waits_s.end(), other.cold_waits_s.begin(), other.cold_waits_s.end());
}

Ledger::Ledger(StateStore* store) : store_(store) {}

absl::Status Ledger::Load() {
  if (store_ == nullptr) return absl::OkStatus();
  ASSIGN_OR_RETURN(StoredLedger stored, store_->LoadLedger());
  for (auto& [function, since] : stored.tracking_since) accounts_[function].tracking_since = since;
  for (auto& [function, buckets] : stored.buckets) {
    for (auto& [hour, bucket] : buckets) {
      if (std::isnan(bucket.cost))
        bucket.cost = (bucket.busy_s + bucket.idle_s + bucket.warming_s) * gpu_hour_price_ / kSecondsPerHour;
    }
    accounts_[function].buckets = std::move(buckets);
  }
  for (auto& [function, waits] : stored.cold_waits) {
    FunctionAccount& account = accounts_[function];
    account.cold_waits = std::move(waits);
    account.flushed_waits = account.cold_waits.size();
  }
  return absl::OkStatus();
}

LedgerBucket& Ledger::BucketAt(FunctionAccount& account, absl::Time t) {
  const int64_t hour = HourOf(t);
  if (store_ != nullptr) account.dirty_hours.insert(hour);
  return account.buckets[hour];
}

void Ledger::Accrue(FunctionAccount& account, GpuUse use, absl::Time from, absl::Time to) {
  while (from < to) {
    const absl::Time hour_end = absl::FromUnixSeconds(HourOf(from) + kSecondsPerHour);
    const absl::Time end = std::min(to, hour_end);
    LedgerBucket& bucket = BucketAt(account, from);
    const double seconds = absl::ToDoubleSeconds(end - from);
    *FieldOf(bucket, use) += seconds;
    if (use != GpuUse::kOff) bucket.cost += seconds * gpu_hour_price_ / kSecondsPerHour;
    from = end;
  }
}

void Ledger::SetUse(const std::string& function, GpuUse use, absl::Time now) {
  FunctionAccount& account = accounts_[function];
  if (account.use_since == absl::InfiniteFuture()) {
    if (account.tracking_since == absl::InfiniteFuture()) {
      account.tracking_since = now;
      new_functions_.push_back(function);
    }
  } else {
    if (account.use == use) return;
    Accrue(account, account.use, account.use_since, now);
  }
  account.use = use;
  account.use_since = now;
}

void Ledger::StopTracking(const std::string& function, absl::Time now) {
  auto it = accounts_.find(function);
  if (it == accounts_.end() || it->second.use_since == absl::InfiniteFuture()) return;
  FunctionAccount& account = it->second;
  Accrue(account, account.use, account.use_since, now);
  account.use = GpuUse::kOff;
  account.use_since = absl::InfiniteFuture();
}

void Ledger::RecordColdStart(const std::string& function, absl::Time at) {
  ++BucketAt(accounts_[function], at).cold_starts;
}

void Ledger::RecordColdWait(const std::string& function, absl::Time at, absl::Duration wait) {
  accounts_[function].cold_waits.push_back({at, absl::ToDoubleSeconds(wait)});
}

void Ledger::Settle(absl::Time now) {
  for (auto& [function, account] : accounts_) {
    if (account.use_since == absl::InfiniteFuture() || account.use_since >= now) continue;
    Accrue(account, account.use, account.use_since, now);
    account.use_since = now;
  }
}

double Ledger::BusySeconds(const std::string& function, absl::Time from, absl::Time to) const {
  auto it = accounts_.find(function);
  if (it == accounts_.end()) return 0;
  double busy_s = 0;
  const auto& buckets = it->second.buckets;
  for (auto bucket = buckets.lower_bound(HourOf(from)); bucket != buckets.end(); ++bucket) {
    if (absl::FromUnixSeconds(bucket->first) >= to) break;
    busy_s += bucket->second.busy_s;
  }
  return busy_s;
}

absl::Time Ledger::TrackingSince(const std::string& function) const {
  auto it = accounts_.find(function);
  return it == accounts_.end() ? absl::InfiniteFuture() : it->second.tracking_since;
}

LedgerTotals Ledger::Totals(const std::string& function, absl::Time from, absl::Time to) const {
  LedgerTotals totals;
  auto it = accounts_.find(function);
  if (it == accounts_.end()) return totals;
  const auto& buckets = it->second.buckets;
  for (auto bucket = buckets.lower_bound(HourOf(from)); bucket != buckets.end(); ++bucket) {
    if (absl::FromUnixSeconds(bucket->first) >= to) break;
    totals.busy_s += bucket->second.busy_s;
    totals.idle_s += bucket->second.idle_s;
    totals.warming_s += bucket->second.warming_s;
    totals.off_s += bucket->second.off_s;
    totals.cold_starts += bucket->second.cold_starts;
    totals.cost += bucket->second.cost;
  }
  for (const ColdWait& wait : it->second.cold_waits) {
    if (wait.at >= from && wait.at < to) totals.cold_waits_s.push_back(wait.wait_s);
  }
  return totals;
}

absl::Status Ledger::Flush() {
  if (store_ == nullptr) return absl::OkStatus();
  for (const std::string& function : new_functions_) {
    RETURN_IF_ERROR(store_->SaveTrackingSince(function, accounts_[function].tracking_since));
  }
  new_functions_.clear();
  for (auto& [function, account] : accounts_) {
    std::map<int64_t, LedgerBucket> changed;
    for (int64_t hour : account.dirty_hours) changed[hour] = account.buckets[hour];
    RETURN_IF_ERROR(store_->SaveBuckets(function, changed));
    account.dirty_hours.clear();
    std::vector<ColdWait> fresh(account.cold_waits.begin() + account.flushed_waits, account.cold_waits.end());
    RETURN_IF_ERROR(store_->AppendColdWaits(function, fresh));
    account.flushed_waits = account.cold_waits.size();
  }
  return absl::OkStatus();
}

}  // namespace doze::lifecycle
