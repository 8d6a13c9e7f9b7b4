#include "gateway/ops/status_report.h"

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace doze::gateway {
namespace {

using Json = nlohmann::json;

constexpr WorkerState kAllStates[] = {WorkerState::kStopped,  WorkerState::kStarting, WorkerState::kReady,
                                      WorkerState::kSleeping, WorkerState::kWaking,   WorkerState::kStopping,
                                      WorkerState::kFailed};

std::string Rfc3339(absl::Time time) {
  return absl::FormatTime(absl::RFC3339_full, time, absl::UTCTimeZone());
}

Json FunctionStatus(const FunctionRuntime& function) {
  WorkerSnapshot worker = function.supervisor().snapshot();
  const FunctionMetrics& metrics = function.metrics();
  Json status = {{"state", WorkerStateName(worker.state)},
                 {"pid", worker.pid.has_value() ? Json(*worker.pid) : Json(nullptr)},
                 {"since", Rfc3339(worker.since)},
                 {"queue_depth", function.dispatcher().queue_depth()},
                 {"in_flight", function.dispatcher().in_flight()},
                 {"requests", metrics.requests()},
                 {"tokens_in", metrics.tokens_in()},
                 {"tokens_out", metrics.tokens_out()},
                 {"cold_starts", worker.cold_starts},
                 {"last_cold_start_ms", worker.last_cold_start_ms},
                 {"median_cold_start_ms", worker.median_cold_start_ms},
                 {"last_error", worker.last_error.empty() ? Json(nullptr) : Json(worker.last_error)}};
  Json by_status = Json::object();
  for (const auto& [code, count] : metrics.requests_by_status()) by_status[absl::StrCat(code)] = count;
  status["requests_by_status"] = by_status;
  status["stream_errors"] = metrics.stream_errors();
  if (worker.state == WorkerState::kFailed && worker.next_start_allowed != absl::InfinitePast()) {
    status["next_start_allowed"] = Rfc3339(worker.next_start_allowed);
  }
  return status;
}

// Prometheus label values escape backslash, double quote and newline.
std::string Label(const std::string& value) {
  std::string escaped;
  for (char c : value) {
    if (c == '\\' || c == '"') escaped += '\\';
    if (c == '\n') {
      escaped += "\\n";
      continue;
    }
    escaped += c;
  }
  return escaped;
}

void Header(const char* name, const char* type, const char* help, std::string* out) {
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

void RenderCounters(const std::vector<std::shared_ptr<FunctionRuntime>>& all, std::string* out) {
  Header("doze_requests_total", "counter", "Requests by function and HTTP status (499: the client left).",
         out);
  for (const auto& function : all) {
    for (const auto& [code, count] : function->metrics().requests_by_status()) {
      absl::StrAppend(out, "doze_requests_total{function=\"", Label(function->name()), "\",status=\"", code,
                      "\"} ", count, "\n");
    }
  }
  Header(
      "doze_stream_errors_total", "counter",
      "Streams that ended with an error event after their 200 (also counted in doze_requests_total as 200).",
      out);
  for (const auto& function : all) {
    absl::StrAppend(out, "doze_stream_errors_total{function=\"", Label(function->name()), "\"} ",
                    function->metrics().stream_errors(), "\n");
  }
  Header("doze_tokens_total", "counter", "Prompt (in) and generated (out) tokens by function.", out);
  for (const auto& function : all) {
    absl::StrAppend(out, "doze_tokens_total{function=\"", Label(function->name()), "\",direction=\"in\"} ",
                    function->metrics().tokens_in(), "\n");
    absl::StrAppend(out, "doze_tokens_total{function=\"", Label(function->name()), "\",direction=\"out\"} ",
                    function->metrics().tokens_out(), "\n");
  }
}

void RenderGauges(const std::vector<std::shared_ptr<FunctionRuntime>>& all, std::string* out) {
  Header("doze_worker_state", "gauge", "1 for the state the function's worker is in.", out);
  for (const auto& function : all) {
    WorkerState current = function->supervisor().state();
    for (WorkerState state : kAllStates) {
      absl::StrAppend(out, "doze_worker_state{function=\"", Label(function->name()), "\",state=\"",
                      WorkerStateName(state), "\"} ", state == current ? 1 : 0, "\n");
    }
  }
  Header("doze_queue_depth", "gauge", "Requests waiting for the function's worker.", out);
  for (const auto& function : all) {
    absl::StrAppend(out, "doze_queue_depth{function=\"", Label(function->name()), "\"} ",
                    function->dispatcher().queue_depth(), "\n");
  }
  Header("doze_in_flight", "gauge", "Requests running on the function's worker.", out);
  for (const auto& function : all) {
    absl::StrAppend(out, "doze_in_flight{function=\"", Label(function->name()), "\"} ",
                    function->dispatcher().in_flight(), "\n");
  }
}

void RenderHistograms(const std::vector<std::shared_ptr<FunctionRuntime>>& all, std::string* out) {
  struct Entry {
    const char* name;
    const char* help;
    const Histogram& (*get)(const FunctionMetrics&);
  };
  const Entry entries[] = {
      {"doze_time_to_first_token_seconds", "Arrival to the worker's first response.",
       [](const FunctionMetrics& m) -> const Histogram& { return m.time_to_first_token(); }},
      {"doze_queue_wait_seconds", "Arrival to dispatch on a worker.",
       [](const FunctionMetrics& m) -> const Histogram& { return m.queue_wait(); }},
      {"doze_cold_start_seconds", "Worker spawn to health SERVING.",
       [](const FunctionMetrics& m) -> const Histogram& { return m.cold_start(); }},
      {"doze_gateway_overhead_seconds",
       "Time in the gateway: arrival to last response minus the worker's total.",
       [](const FunctionMetrics& m) -> const Histogram& { return m.gateway_overhead(); }},
      {"doze_stream_message_gateway_seconds",
       "A streamed message's time in the gateway: its worker response taken off the gRPC completion queue to "
       "its SSE chunk written to the client's socket.",
       [](const FunctionMetrics& m) -> const Histogram& { return m.stream_message_gateway(); }},
  };
  for (const Entry& entry : entries) {
    Header(entry.name, "histogram", entry.help, out);
    for (const auto& function : all) {
      entry.get(function->metrics())
          .Render(entry.name, absl::StrCat("function=\"", Label(function->name()), "\""), out);
    }
  }
}

}  // namespace

std::string RenderStatusJson(const FunctionTable& functions, LifecycleDriver* lifecycle,
                             const ReloadLog& reloads) {
  Json all = Json::object();
  for (const auto& function : functions.All()) {
    Json status = FunctionStatus(*function);
    status["lifecycle"] = lifecycle->StatusOf(function->name());
    all[function->name()] = std::move(status);
  }
  return Json{{"functions", all}, {"reload", reloads.ToJson()}}.dump(-1, ' ', false,
                                                                     Json::error_handler_t::replace);
}

std::string RenderMetrics(const FunctionTable& functions, LifecycleDriver* lifecycle) {
  std::vector<std::shared_ptr<FunctionRuntime>> all = functions.All();
  std::string out;
  RenderCounters(all, &out);
  RenderGauges(all, &out);
  RenderHistograms(all, &out);
  lifecycle->RenderMetrics(&out);
  return out;
}

}  // namespace doze::gateway
