// Where the engine thread reports one request's progress; implemented by the gRPC call that streams it back.
#pragma once

#include "absl/status/status.h"
#include "worker/engine/request_output.h"

namespace doze::service {

// Every method is called on the engine thread, in this order: OnAdmitted or OnError once, OnOutput for each
// step's output (the last one finished) and OnStepEnd once the step's outputs for all requests have been
// handed over, then Release once. The sink must stay alive until Release.
class RequestSink {
 public:
  virtual ~RequestSink() = default;

  // The engine took the request in.
  virtual void OnAdmitted() = 0;
  // One step's output; `output.finished` on the last.
  virtual void OnOutput(RequestOutput output) = 0;
  // The step that gave this sink an output has handed all its outputs over: a sink that serves several
  // requests (a GenerateStream) sends them together from here.
  virtual void OnStepEnd() = 0;
  // The engine refused the request (its status names the field); no output follows.
  virtual void OnError(absl::Status status) = 0;
  // The engine thread holds no more references to this sink.
  virtual void Release() = 0;
};

}  // namespace doze::service
