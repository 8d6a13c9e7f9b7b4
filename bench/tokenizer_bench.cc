// Tokenizer encode throughput on one core, per kind of text: prints one JSON line, then a table.
//
// usage: doze_tokenizer_bench [--tokenizer DIR_OR_FILE] [--mb MEGABYTES_PER_KIND]
// Each kind's text is built from seeded random sentences, and encoded in 4 KiB requests (the size of a
// typical prompt) by a freshly loaded tokenizer: "cold" is the first pass (the word cache filling), "warm"
// the best of three.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "worker/tokenizer/tokenizer.h"

namespace {

struct TextKind {
  const char* name;
  std::vector<std::string> sentences;
};

std::vector<TextKind> Kinds() {
  std::vector<std::string> english = {
      "The quick brown fox jumps over the lazy dog. ",
      "Serving systems batch requests to keep the GPU busy.\n",
      "We've measured latency at the 99th percentile, and it's under 40 ms. ",
      "Tokenization turns text into integers that a model can read; it must be exact. ",
      "In 2023, the team shipped version 3.14 with 27 new features!\n"};
  std::vector<std::string> chinese = {"人工智能正在改变我们的生活方式。", "今天天气很好，我们去公园散步吧！",
                                      "这个系统可以同时处理多个请求，提高吞吐量。\n",
                                      "大语言模型的推理速度取决于显存带宽。",
                                      "请把这段文字翻译成英文，并保持原意。\n"};
  std::vector<std::string> code = {
      "def encode(self, text):\n    return [self.vocab[t] for t in self.split(text)]\n",
      "for (int i = 0; i < n; ++i) {\n  sum += values[i] * weights[i];\n}\n",
      "{\"model\": \"qwen2.5\", \"max_tokens\": 256, \"temperature\": 0.7}\n",
      "if err != nil {\n\treturn fmt.Errorf(\"open %s: %w\", path, err)\n}\n"};
  std::vector<std::string> mixed;
  for (size_t i = 0; i < english.size(); ++i) mixed.push_back(english[i] + chinese[i]);
  mixed.push_back("用户说：\"Can you help me?\" 助手回答：当然可以 😀\n");
  return {{"english", english}, {"chinese", chinese}, {"mixed_zh_en", mixed}, {"code", code}};
}

// Concatenates random sentences of `kind`, each with a random number, until `bytes` long.
std::string BuildText(const TextKind& kind, size_t bytes, std::mt19937* rng) {
  std::string text;
  std::uniform_int_distribution<size_t> pick(0, kind.sentences.size() - 1);
  std::uniform_int_distribution<int> number(0, 99999);
  while (text.size() < bytes) {
    text += kind.sentences[pick(*rng)];
    if ((*rng)() % 4 == 0) text += std::to_string(number(*rng)) + " ";
  }
  return text;
}

// Cuts text into requests of about 4 KiB, never inside a UTF-8 character.
std::vector<std::string_view> Requests(std::string_view text) {
  std::vector<std::string_view> requests;
  size_t begin = 0;
  while (begin < text.size()) {
    size_t end = std::min(text.size(), begin + 4096);
    while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) ++end;
    requests.push_back(text.substr(begin, end - begin));
    begin = end;
  }
  return requests;
}

// Encodes every request once; returns the seconds taken and adds the token count to `tokens`.
double EncodePass(const doze::Tokenizer& tokenizer, const std::vector<std::string_view>& requests,
                  size_t* tokens) {
  auto start = std::chrono::steady_clock::now();
  size_t count = 0;
  for (std::string_view request : requests) {
    auto ids = tokenizer.Encode(request);
    if (!ids.ok()) std::abort();
    count += ids->size();
  }
  *tokens = count;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

struct Result {
  std::string kind;
  double mb;
  size_t tokens;
  double cold_mb_per_s;
  double warm_mb_per_s;
  double warm_tokens_per_s;
};

std::string TokenizerPath(int argc, char** argv, double* megabytes) {
  std::string path = DOZE_DEFAULT_TOKENIZER_DIR;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--tokenizer") path = argv[i + 1];
    if (flag == "--mb") *megabytes = std::atof(argv[i + 1]);
  }
  if (path.size() < 5 || path.substr(path.size() - 5) != ".json") path += "/tokenizer.json";
  return path;
}

}  // namespace

int main(int argc, char** argv) {
  double megabytes = 4;
  std::string path = TokenizerPath(argc, argv, &megabytes);
  std::mt19937 rng(7);
  std::vector<Result> results;
  for (const TextKind& kind : Kinds()) {
    auto tokenizer = doze::Tokenizer::FromFile(path);
    if (!tokenizer.ok()) {
      std::fprintf(stderr, "%s\n", std::string(tokenizer.status().message()).c_str());
      return 1;
    }
    std::string text = BuildText(kind, static_cast<size_t>(megabytes * 1e6), &rng);
    std::vector<std::string_view> requests = Requests(text);
    size_t tokens = 0;
    double cold = EncodePass(**tokenizer, requests, &tokens);
    double warm = 1e30;
    for (int pass = 0; pass < 3; ++pass) warm = std::min(warm, EncodePass(**tokenizer, requests, &tokens));
    double mb = static_cast<double>(text.size()) / 1e6;
    results.push_back({kind.name, mb, tokens, mb / cold, mb / warm, static_cast<double>(tokens) / warm});
  }
  std::string json = "{\"bench\":\"tokenizer_encode\",\"threads\":1,\"results\":[";
  for (size_t i = 0; i < results.size(); ++i) {
    const Result& r = results[i];
    char entry[256];
    std::snprintf(entry, sizeof(entry),
                  "%s{\"kind\":\"%s\",\"mb\":%.2f,\"tokens\":%zu,\"cold_mb_per_s\":%.2f,\"mb_per_s\":%.2f,"
                  "\"tokens_per_s\":%.0f}",
                  i ? "," : "", r.kind.c_str(), r.mb, r.tokens, r.cold_mb_per_s, r.warm_mb_per_s,
                  r.warm_tokens_per_s);
    json += entry;
  }
  std::printf("%s]}\n\n", json.c_str());
  std::printf("%-12s %8s %10s %10s %12s\n", "kind", "MB", "cold MB/s", "MB/s", "tokens/s");
  for (const Result& r : results) {
    std::printf("%-12s %8.2f %10.2f %10.2f %12.0f\n", r.kind.c_str(), r.mb, r.cold_mb_per_s, r.warm_mb_per_s,
                r.warm_tokens_per_s);
  }
  return 0;
}
