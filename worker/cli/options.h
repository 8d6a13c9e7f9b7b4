// Boost.Program_options glue shared by the subcommands: parse, print --help, report errors uniformly.
#pragma once

#include <boost/program_options.hpp>
#include <optional>
#include <string>

namespace doze::cli {

namespace po = boost::program_options;

// Parses argv into `vm`. Returns an exit code to return right away (0 after --help, 2 on a usage error), or
// nullopt to carry on.
std::optional<int> ParseOptions(int argc, char** argv, const po::options_description& options,
                                po::variables_map& vm, const char* usage);

// Prints "doze: <message>" to stderr and returns 1.
int Fail(const std::string& message);

}  // namespace doze::cli
