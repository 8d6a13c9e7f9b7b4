// Kernel CPU lists ("0-3,8,10-11", as taskset -c and /sys/devices/system/cpu take them) and pinning to them.
#pragma once

#include <sched.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace doze {

// The CPUs `list` names: comma-separated CPU numbers or inclusive ranges "a-b" (a <= b). An empty list, a
// malformed entry or a CPU at or past CPU_SETSIZE is an InvalidArgument error naming it.
absl::StatusOr<cpu_set_t> ParseCpuList(absl::string_view list);

// Pins the calling thread to `cpus` (sched_setaffinity); an error when the kernel refuses (no CPU of the set
// is online or allowed).
absl::Status PinThisThread(const cpu_set_t& cpus);

}  // namespace doze
