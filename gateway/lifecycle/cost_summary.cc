#include "gateway/lifecycle/cost_summary.h"

#include "worker/common/percentile.h"

namespace doze::lifecycle {

CostSummary Summarize(const LedgerTotals& totals, double gpu_hour_price) {
  CostSummary s;
  s.gpu_hours = totals.gpu_s() / 3600;
  s.always_on_gpu_hours = totals.elapsed_s() / 3600;
  s.busy_gpu_hours = totals.busy_s / 3600;
  s.cost = totals.cost;  // priced as the hours passed
  s.always_on_cost = s.always_on_gpu_hours * gpu_hour_price;
  s.savings = s.always_on_gpu_hours > 0 ? 1 - s.gpu_hours / s.always_on_gpu_hours : 0;
  s.cold_starts = totals.cold_starts;
  s.cold_wait_p50_s = Percentile(totals.cold_waits_s, 50);
  s.cold_wait_p95_s = Percentile(totals.cold_waits_s, 95);
  s.utilization = s.gpu_hours > 0 ? s.busy_gpu_hours / s.gpu_hours : 0;
  return s;
}

nlohmann::json CostSummaryToJson(const CostSummary& s) {
  return {{"gpu_hours", s.gpu_hours},
          {"always_on_gpu_hours", s.always_on_gpu_hours},
          {"savings", s.savings},
          {"cost", s.cost},
          {"always_on_cost", s.always_on_cost},
          {"cold_starts", s.cold_starts},
          {"cold_wait_p50_s", s.cold_wait_p50_s},
          {"cold_wait_p95_s", s.cold_wait_p95_s},
          {"utilization", s.utilization}};
}

}  // namespace doze::lifecycle
