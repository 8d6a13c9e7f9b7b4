// The operator's endpoints: GET /healthz, /ops/status, /metrics, /v1/models, and
// POST /ops/functions/{name}/start|stop|sleep|wake|archive|restore (admin token required).
#pragma once

#include <memory>
#include <string>

#include "gateway/api/api_keys.h"
#include "gateway/functions/function_table.h"
#include "gateway/http/router.h"
#include "gateway/ops/reload_log.h"
#include "gateway/workers/lifecycle_driver.h"

namespace doze::gateway {

class OpsHandler {
 public:
  // `admin_token` empty: mutations are refused. Pointers must outlive the handler.
  OpsHandler(const FunctionTable* functions, LifecycleDriver* lifecycle, const ApiKeySet* keys,
             const ReloadLog* reloads, std::string admin_token)
      : functions_(functions),
        lifecycle_(lifecycle),
        keys_(keys),
        reloads_(reloads),
        admin_token_(std::move(admin_token)) {}

  // Adds this handler's routes to `router`.
  void Register(Router* router) const;

 private:
  void Models(const HttpRequest& request, const std::shared_ptr<ResponseChannel>& channel) const;
  // GET /v1/models/{name}: one function's model object, or 404.
  void Model(const HttpRequest& request, const std::shared_ptr<ResponseChannel>& channel) const;
  void FunctionVerb(const HttpRequest& request, const std::shared_ptr<ResponseChannel>& channel) const;
  absl::Status CheckAdmin(const std::string& authorization) const;

  const FunctionTable* functions_;
  LifecycleDriver* lifecycle_;
  const ApiKeySet* keys_;
  const ReloadLog* reloads_;
  const std::string admin_token_;
};

}  // namespace doze::gateway
