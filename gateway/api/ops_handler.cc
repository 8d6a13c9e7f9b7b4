#include "gateway/api/ops_handler.h"

#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gateway/openai/api_error.h"
#include "gateway/ops/status_report.h"
#include "nlohmann/json.hpp"

namespace doze::gateway {
namespace {

// The operator actions the lifecycle policy carries out; nullopt for other verbs.
std::optional<lifecycle::OperatorAction> ParseOperatorAction(const std::string& verb) {
  for (lifecycle::OperatorAction action :
       {lifecycle::OperatorAction::kStart, lifecycle::OperatorAction::kStop,
        lifecycle::OperatorAction::kSleep, lifecycle::OperatorAction::kWake}) {
    if (verb == lifecycle::OperatorActionName(action)) return action;
  }
  return std::nullopt;
}

// GET /v1/models/{name}: the path before the name.
constexpr char kModelPrefix[] = "/v1/models/";

}  // namespace

void OpsHandler::Register(Router* router) const {
  router->Add("GET", "/healthz", [](HttpRequest, std::shared_ptr<ResponseChannel> channel) {
    channel->Send(MakeResponse(200, R"({"status":"ok"})"));
  });
  router->Add("GET", "/ops/status", [this](HttpRequest, std::shared_ptr<ResponseChannel> channel) {
    channel->Send(MakeResponse(200, RenderStatusJson(*functions_, lifecycle_, *reloads_)));
  });
  router->Add("GET", "/metrics", [this](HttpRequest, std::shared_ptr<ResponseChannel> channel) {
    channel->Send(MakeResponse(200, RenderMetrics(*functions_, lifecycle_), "text/plain; version=0.0.4"));
  });
  router->Add("GET", "/v1/models", [this](HttpRequest request, std::shared_ptr<ResponseChannel> channel) {
    Models(request, channel);
  });
  router->AddPrefix(
      "GET", kModelPrefix,
      [this](HttpRequest request, std::shared_ptr<ResponseChannel> channel) { Model(request, channel); });
  router->AddPrefix("POST", "/ops/functions/",
                    [this](HttpRequest request, std::shared_ptr<ResponseChannel> channel) {
                      FunctionVerb(request, channel);
                    });
}

namespace {

// OpenAI's model object for a function.
nlohmann::json ModelObject(const FunctionRuntime& function) {
  return {{"id", function.name()},
          {"object", "model"},
          {"created", 0},
          {"owned_by", "doze"},
          {"description", function.config()->description}};
}

}  // namespace

void OpsHandler::Models(const HttpRequest& request, const std::shared_ptr<ResponseChannel>& channel) const {
  absl::Status allowed = keys_->Check(request.authorization);
  if (!allowed.ok()) return channel->Send(ErrorResponse(allowed));
  nlohmann::json data = nlohmann::json::array();
  for (const auto& function : functions_->All()) data.push_back(ModelObject(*function));
  channel->Send(MakeResponse(200, nlohmann::json{{"object", "list"}, {"data", data}}.dump()));
}

void OpsHandler::Model(const HttpRequest& request, const std::shared_ptr<ResponseChannel>& channel) const {
  absl::Status allowed = keys_->Check(request.authorization);
  if (!allowed.ok()) return channel->Send(ErrorResponse(allowed));
  const std::string name = request.path.substr(sizeof(kModelPrefix) - 1);
  std::shared_ptr<FunctionRuntime> function = functions_->Find(name);
  if (function == nullptr) {
    return channel->Send(ErrorResponse(WithCode(
        WithParam(
            absl::NotFoundError(absl::StrCat("The model `", name, "` does not exist: it names no function")),
            "model"),
        "model_not_found")));
  }
  channel->Send(MakeResponse(200, ModelObject(*function).dump()));
}

absl::Status OpsHandler::CheckAdmin(const std::string& authorization) const {
  if (admin_token_.empty()) {
    return absl::PermissionDeniedError("operator actions are disabled: no admin token is configured");
  }
  std::optional<std::string> token = BearerToken(authorization);
  if (!token.has_value() || !ConstantTimeEquals(*token, admin_token_)) {
    return absl::UnauthenticatedError("operator actions need \"Authorization: Bearer <admin token>\"");
  }
  return absl::OkStatus();
}

void OpsHandler::FunctionVerb(const HttpRequest& request,
                              const std::shared_ptr<ResponseChannel>& channel) const {
  absl::Status allowed = CheckAdmin(request.authorization);
  if (!allowed.ok()) return channel->Send(ErrorResponse(allowed));
  std::vector<std::string> parts = absl::StrSplit(request.path.substr(sizeof("/ops/functions/") - 1), '/');
  if (parts.size() != 2)
    return channel->Send(ErrorResponse(absl::NotFoundError("use /ops/functions/{name}/{verb}")));
  std::shared_ptr<FunctionRuntime> function = functions_->Find(parts[0]);
  if (function == nullptr) {
    return channel->Send(ErrorResponse(absl::NotFoundError(absl::StrCat("no function named ", parts[0]))));
  }
  const std::string& verb = parts[1];
  absl::StatusOr<std::string> state;
  if (verb == "archive") {
    state = lifecycle_->Archive(function->name(), "operator: archive");
  } else if (verb == "restore") {
    state = lifecycle_->Restore(function->name());
  } else if (std::optional<lifecycle::OperatorAction> action = ParseOperatorAction(verb)) {
    state = lifecycle_->Operate(function->name(), *action);
  } else {
    return channel->Send(ErrorResponse(absl::NotFoundError(
        absl::StrCat("unknown verb ", verb, ": use start, stop, sleep, wake, archive or restore"))));
  }
  if (!state.ok()) return channel->Send(ErrorResponse(state.status()));
  nlohmann::json body = {{"function", function->name()},
                         {"action", verb},
                         {"state", WorkerStateName(function->supervisor().state())},
                         {"lifecycle_state", *state}};
  channel->Send(MakeResponse(202, body.dump()));
}

}  // namespace doze::gateway
