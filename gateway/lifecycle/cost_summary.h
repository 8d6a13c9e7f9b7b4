// What a period of the ledger cost, next to what always-on would have cost: the figures of `doze simulate`
// and of the gateway's /ops pages.
#pragma once

#include <cstdint>
#include <vector>

#include "gateway/lifecycle/ledger.h"
#include "nlohmann/json.hpp"

namespace doze::lifecycle {

struct CostSummary {
  double gpu_hours = 0;            // Busy + idle + warming.
  double always_on_gpu_hours = 0;  // The whole period.
  double busy_gpu_hours = 0;
  double savings = 0;  // 1 - cost / always_on_cost.
  double cost = 0;
  double always_on_cost = 0;
  int64_t cold_starts = 0;
  double cold_wait_p50_s = 0;
  double cold_wait_p95_s = 0;
  double utilization = 0;  // Busy share of the GPU time paid for.
};

// Summarizes `totals`: the cost the ledger priced as the hours passed, always-on at `gpu_hour_price`.
CostSummary Summarize(const LedgerTotals& totals, double gpu_hour_price);

// Returns the fields of `summary` under the names `doze simulate` prints.
nlohmann::json CostSummaryToJson(const CostSummary& summary);

}  // namespace doze::lifecycle
