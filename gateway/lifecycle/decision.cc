#include "gateway/lifecycle/decision.h"

namespace doze::lifecycle {

const char* ActionName(Action action) {
  switch (action) {
    case Action::kStart:
      return "start";
    case Action::kStop:
      return "stop";
    case Action::kSleep:
      return "sleep";
    case Action::kWake:
      return "wake";
    case Action::kArchive:
      return "archive";
    case Action::kRestore:
      return "restore";
    case Action::kReject:
      return "reject";
  }
  return "unknown";
}

}  // namespace doze::lifecycle
