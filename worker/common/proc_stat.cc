#include "worker/common/proc_stat.h"

#include <unistd.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "worker/common/file_util.h"

namespace doze {

absl::StatusOr<std::vector<std::string>> ProcStatFields(int pid) {
  const std::string path = pid == 0 ? "/proc/self/stat" : absl::StrCat("/proc/", pid, "/stat");
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  const size_t end_of_name = text->rfind(')');
  if (end_of_name == std::string::npos || end_of_name + 2 > text->size()) {
    return absl::DataLossError(absl::StrCat(path, ": no command name"));
  }
  return std::vector<std::string>(
      absl::StrSplit(absl::string_view(*text).substr(end_of_name + 2), ' ', absl::SkipWhitespace()));
}

absl::StatusOr<double> ProcessCpuSeconds(int pid) {
  absl::StatusOr<std::vector<std::string>> fields = ProcStatFields(pid);
  if (!fields.ok()) return fields.status();
  constexpr size_t kUtime = 14 - 3, kStime = 15 - 3;
  if (fields->size() <= kStime) return absl::DataLossError("/proc stat: too few fields");
  const double ticks =
      std::strtod((*fields)[kUtime].c_str(), nullptr) + std::strtod((*fields)[kStime].c_str(), nullptr);
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

}  // namespace doze
