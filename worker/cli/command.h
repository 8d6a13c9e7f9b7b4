// One subcommand of the `doze` command-line tool.
#pragma once

#include <string>
#include <vector>

namespace doze::cli {

// Each subcommand parses its own arguments (argv[0] is the subcommand name) and returns the process exit
// code. Errors are printed to stderr.
using CommandFn = int (*)(int argc, char** argv);

struct Command {
  const char* name;
  const char* summary;
  CommandFn run;
};

int MakeModelCommand(int argc, char** argv);
int TokenizeCommand(int argc, char** argv);
int GenerateCommand(int argc, char** argv);
int ChatCommand(int argc, char** argv);
int BenchCommand(int argc, char** argv);
int TraceCommand(int argc, char** argv);
int SimulateCommand(int argc, char** argv);
int LogitsCommand(int argc, char** argv);
int ClientCommand(int argc, char** argv);
int BenchColdCommand(int argc, char** argv);

}  // namespace doze::cli
