// Reading /proc/PID/stat (proc(5)).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace doze {

// The fields of /proc/PID/stat from the third on (`pid` 0: this process): element i is field i + 3 of
// proc(5). The command name (field 2) may hold spaces, so the split starts after its closing parenthesis.
absl::StatusOr<std::vector<std::string>> ProcStatFields(int pid);

// The CPU time, user and system (fields 14 and 15), process `pid` has used so far, in seconds.
absl::StatusOr<double> ProcessCpuSeconds(int pid);

}  // namespace doze
