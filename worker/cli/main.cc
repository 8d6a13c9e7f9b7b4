// doze: the command-line tool over doze's libraries.
#include <cstdio>
#include <cstring>

#include "worker/cli/command.h"

namespace {

constexpr doze::cli::Command kCommands[] = {
    {"make-model", "write a random checkpoint in Hugging Face layout", doze::cli::MakeModelCommand},
    {"tokenize", "JSON strings in, JSON arrays of token ids out (--decode: the reverse)",
     doze::cli::TokenizeCommand},
    {"generate", "run JSON-lines prompts through the engine", doze::cli::GenerateCommand},
    {"chat", "an interactive chat on the terminal", doze::cli::ChatCommand},
    {"bench", "measure decode, prefill and time to first token", doze::cli::BenchCommand},
    {"trace", "synthesize a request trace (trace synth --profile office)", doze::cli::TraceCommand},
    {"simulate", "replay a trace through the lifecycle policy and price it", doze::cli::SimulateCommand},
    {"logits", "teacher-forced logits of every prompt position, as raw fp32 files", doze::cli::LogitsCommand},
    {"client", "send JSON-lines prompts to a running worker (or --health, --stats)",
     doze::cli::ClientCommand},
    {"bench-cold", "measure a worker's cold start, sleep and wake", doze::cli::BenchColdCommand},
};

void PrintUsage() {
  std::fprintf(stderr,
               "usage: doze <command> [options]   (doze <command> --help for its options)\n\ncommands:\n");
  for (const auto& command : kCommands) std::fprintf(stderr, "  %-12s %s\n", command.name, command.summary);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    PrintUsage();
    return argc < 2 ? 2 : 0;
  }
  for (const auto& command : kCommands) {
    if (std::strcmp(argv[1], command.name) == 0) return command.run(argc - 1, argv + 1);
  }
  std::fprintf(stderr, "doze: unknown command '%s'\n", argv[1]);
  PrintUsage();
  return 2;
}
