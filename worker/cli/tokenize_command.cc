// doze tokenize: JSON strings in, JSON arrays of ids out, one per line (--decode: the reverse).
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/strings/str_cat.h"
#include "worker/cli/command.h"
#include "worker/cli/options.h"
#include "worker/tokenizer/tokenizer.h"

namespace doze::cli {
namespace {

using nlohmann::json;

absl::Status EncodeLine(const Tokenizer& tokenizer, const json& value, std::string& out) {
  if (!value.is_string()) return absl::InvalidArgumentError("expected a JSON string");
  auto ids = tokenizer.Encode(value.get<std::string>());
  if (!ids.ok()) return ids.status();
  out = json(*ids).dump();
  return absl::OkStatus();
}

absl::Status DecodeLine(const Tokenizer& tokenizer, const json& value, bool skip_special, std::string& out) {
  if (!value.is_array()) return absl::InvalidArgumentError("expected a JSON array of token ids");
  std::vector<int32_t> ids;
  for (const json& id : value) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= tokenizer.vocab_size()) {
      return absl::InvalidArgumentError(absl::StrCat("not a token id of this vocabulary: ", id.dump()));
    }
    ids.push_back(id.get<int32_t>());
  }
  out = json(tokenizer.Decode(ids, skip_special)).dump(-1, ' ', false, json::error_handler_t::replace);
  return absl::OkStatus();
}

}  // namespace

int TokenizeCommand(int argc, char** argv) {
  po::options_description options("doze tokenize");
  options.add_options()("model", po::value<std::string>(), "model directory (its tokenizer.json)")(
      "tokenizer", po::value<std::string>(), "a tokenizer.json (instead of --model)")(
      "decode", po::bool_switch(), "decode JSON arrays of ids into JSON strings")(
      "skip-special-tokens", po::bool_switch(), "with --decode: leave special tokens out");
  po::variables_map vm;
  if (auto code = ParseOptions(argc, argv, options, vm, "doze tokenize --model DIR [--decode] < lines"))
    return *code;
  std::string path;
  if (vm.count("tokenizer")) {
    path = vm["tokenizer"].as<std::string>();
  } else if (vm.count("model")) {
    path = vm["model"].as<std::string>() + "/tokenizer.json";
  } else {
    return Fail("tokenize needs --model DIR or --tokenizer PATH");
  }
  auto tokenizer = Tokenizer::FromFile(path);
  if (!tokenizer.ok()) return Fail(std::string(tokenizer.status().message()));
  const bool decode = vm["decode"].as<bool>();
  std::string line, out;
  for (int line_number = 1; std::getline(std::cin, line); ++line_number) {
    json value = json::parse(line, nullptr, /*allow_exceptions=*/false);
    absl::Status status = value.is_discarded() ? absl::InvalidArgumentError("not valid JSON")
                          : decode ? DecodeLine(**tokenizer, value, vm["skip-special-tokens"].as<bool>(), out)
                                   : EncodeLine(**tokenizer, value, out);
    if (!status.ok()) return Fail(absl::StrCat("stdin line ", line_number, ": ", status.message()));
    std::cout << out << '\n';
  }
  std::cout.flush();
  return 0;
}

}  // namespace doze::cli
