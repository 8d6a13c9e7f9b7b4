// Runs the doze command-line tool as a child process, as a user would, and collects what it prints.
#pragma once

#include <string>
#include <vector>

namespace doze::testing {

struct ProcessResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs `argv` (argv[0] a path) with `stdin_text` on its standard input and waits for it.
ProcessResult RunProcess(const std::vector<std::string>& argv, const std::string& stdin_text = "");

// build/bin/doze of this build tree (DOZE_BUILD_DIR).
std::string DozeBinary();
// A folder of the build tree for test files (created when missing).
std::string TestDataDir();
// The source tree (DOZE_SOURCE_DIR).
std::string SourceDir();

}  // namespace doze::testing
