#include "worker/cli/options.h"

#include <iostream>

namespace doze::cli {

std::optional<int> ParseOptions(int argc, char** argv, const po::options_description& options,
                                po::variables_map& vm, const char* usage) {
  po::options_description all = options;
  all.add_options()("help,h", "show this help");
  try {
    po::store(po::command_line_parser(argc, argv).options(all).run(), vm);
    if (vm.count("help")) {
      std::cout << "usage: " << usage << "\n" << all << "\n";
      return 0;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "doze: " << e.what() << "\nusage: " << usage << "\n";
    return 2;
  }
  return std::nullopt;
}

int Fail(const std::string& message) {
  std::cerr << "doze: " << message << "\n";
  return 1;
}

}  // namespace doze::cli
