#include "worker/common/cpu_list.h"

#include <errno.h>

#include <cstring>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace doze {

absl::StatusOr<cpu_set_t> ParseCpuList(absl::string_view list) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (list.empty()) return absl::InvalidArgumentError("empty CPU list");
  for (absl::string_view range : absl::StrSplit(list, ',')) {
    std::pair<absl::string_view, absl::string_view> ends = absl::StrSplit(range, absl::MaxSplits('-', 1));
    int first = 0, last = 0;
    const bool single = range.find('-') == absl::string_view::npos;
    if (!absl::SimpleAtoi(ends.first, &first) || (!single && !absl::SimpleAtoi(ends.second, &last)) ||
        first < 0) {
      return absl::InvalidArgumentError(absl::StrCat("CPU list \"", list, "\": bad entry \"", range, "\""));
    }
    if (single) last = first;
    if (last < first || last >= CPU_SETSIZE) {
      return absl::InvalidArgumentError(absl::StrCat("CPU list \"", list, "\": bad range \"", range,
                                                     "\" (CPUs 0 to ", CPU_SETSIZE - 1, ")"));
    }
    for (int cpu = first; cpu <= last; ++cpu) CPU_SET(cpu, &set);
  }
  return set;
}

absl::Status PinThisThread(const cpu_set_t& cpus) {
  if (sched_setaffinity(0, sizeof(cpus), &cpus) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("sched_setaffinity: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace doze
