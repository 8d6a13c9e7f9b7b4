// doze chat: an interactive conversation on the terminal, streamed token by token.
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "worker/cli/command.h"
#include "worker/cli/engine_flags.h"
#include "worker/cli/sampling_flags.h"

namespace doze::cli {
namespace {

// Generates one assistant reply to `messages`, printing it as it streams; returns the reply text.
absl::StatusOr<std::string> Reply(ModelInstance& model, const std::vector<ChatMessage>& messages,
                                  const SamplingParams& params) {
  PromptInput prompt;
  prompt.messages = messages;
  auto ids = model.PromptTokenIds(prompt);
  if (!ids.ok()) return ids.status();
  auto id = model.engine().AddRequest(*std::move(ids), params);
  if (!id.ok()) return id.status();
  std::string reply;
  while (model.engine().HasUnfinished()) {
    for (const RequestOutput& output : model.engine().Step()) {
      reply += output.text_delta;
      std::cout << output.text_delta << std::flush;
    }
  }
  std::cout << "\n";
  return reply;
}

}  // namespace

int ChatCommand(int argc, char** argv) {
  po::options_description options("doze chat");
  options.add_options()("system", po::value<std::string>(), "system prompt (default: the chat template's)");
  AddEngineOptions(options);
  AddSamplingOptions(options);
  po::variables_map vm;
  if (auto code = ParseOptions(argc, argv, options, vm, "doze chat --model DIR [--system TEXT]"))
    return *code;
  auto params = SamplingParamsFromFlags(vm);
  if (!params.ok()) return Fail(std::string(params.status().message()));
  auto model = ModelInstance::Create(ModelInstanceOptionsFromFlags(vm));
  if (!model.ok()) return Fail(std::string(model.status().message()));

  std::vector<ChatMessage> messages;
  if (vm.count("system")) messages.push_back({"system", vm["system"].as<std::string>()});
  std::cout << "doze chat on " << vm["model"].as<std::string>() << " (" << (*model)->backend()
            << "); an empty line or end of input quits.\n";
  std::string line;
  int turns = 0, failed = 0;
  while (std::cout << "> " << std::flush, std::getline(std::cin, line) && !line.empty()) {
    ++turns;
    messages.push_back({"user", line});
    auto reply = Reply(**model, messages, *params);
    if (!reply.ok()) {
      ++failed;
      std::cerr << "doze: " << reply.status().message() << "\n";
      messages.pop_back();
      continue;
    }
    messages.push_back({"assistant", *reply});
  }
  // A session with a failed turn ends in failure, so that a script feeding it can tell.
  if (failed > 0) return Fail(absl::StrCat(failed, " of ", turns, " turns failed"));
  return 0;
}

}  // namespace doze::cli
