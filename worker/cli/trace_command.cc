// doze trace synth: writes a synthetic request trace (CSV) for `doze simulate`.
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "gateway/lifecycle/trace_synth.h"
#include "worker/cli/command.h"
#include "worker/cli/options.h"

namespace doze::cli {

int TraceCommand(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "synth") != 0) {
    std::fprintf(stderr, "usage: doze trace synth --profile office --days 30 [--seed N] [--out FILE]\n");
    return 2;
  }
  po::options_description options("doze trace synth");
  options.add_options()("profile", po::value<std::string>()->default_value("office"),
                        "traffic shape (office)")("days", po::value<int>()->default_value(30),
                                                  "days of traffic")(
      "seed", po::value<uint64_t>()->default_value(1), "random seed; the same seed gives the same trace")(
      "start", po::value<std::string>()->default_value("2025-03-03"), "first day, YYYY-MM-DD")(
      "timezone", po::value<std::string>()->default_value("Asia/Shanghai"), "the office's time zone")(
      "out", po::value<std::string>(), "write here instead of stdout");
  po::variables_map vm;
  if (auto code = ParseOptions(argc - 1, argv + 1, options, vm,
                               "doze trace synth --profile office --days 30 [--seed N] [--out FILE]")) {
    return *code;
  }
  lifecycle::SynthOptions synth;
  synth.profile = vm["profile"].as<std::string>();
  synth.days = vm["days"].as<int>();
  synth.seed = vm["seed"].as<uint64_t>();
  if (!absl::ParseCivilTime(vm["start"].as<std::string>(), &synth.start))
    return Fail("--start: expected YYYY-MM-DD");
  if (!absl::LoadTimeZone(vm["timezone"].as<std::string>(), &synth.zone))
    return Fail("--timezone: unknown zone");
  absl::StatusOr<lifecycle::Trace> trace = lifecycle::SynthesizeTrace(synth);
  if (!trace.ok()) return Fail(std::string(trace.status().message()));
  if (!vm.count("out")) {
    lifecycle::WriteTraceCsv(*trace, synth.zone, std::cout);
    return std::cout.good() ? 0 : 1;
  }
  std::ofstream out(vm["out"].as<std::string>());
  lifecycle::WriteTraceCsv(*trace, synth.zone, out);
  out.close();
  return out ? 0 : Fail(absl::StrCat("cannot write ", vm["out"].as<std::string>()));
}

}  // namespace doze::cli
