// Encode throughput on GSM8K text, one thread. Prints one JSON line that
// tools/tokenizer/bench_encode.py compares with Hugging Face `tokenizers`
// measured in the same run:
//   {"load_s":..,"bytes":..,"ids":..,"ids_fnv":"..","best_s":..,"mb_per_s":..}
// ids_fnv is the FNV-1a64 of all ids (as in the golden fixtures), for the
// driver's parity check.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "common/tokenizer/tokenizer.h"

ABSL_FLAG(std::string, tokenizer_dir, "", "directory with vocab.json, merges.txt, tokenizer_config.json");
ABSL_FLAG(std::string, tokenizer_json, "", "a tokenizer.json (instead of --tokenizer_dir)");
ABSL_FLAG(std::string, gsm8k, "", "GSM8K jsonl; every question and answer is one text");
ABSL_FLAG(int, rounds, 5, "timed passes over all texts; the best is reported");

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

int Run() {
  const auto t0 = Clock::now();
  auto tok = absl::GetFlag(FLAGS_tokenizer_json).empty()
                 ? moerl::Tokenizer::FromVocabMerges(absl::GetFlag(FLAGS_tokenizer_dir))
                 : moerl::Tokenizer::FromTokenizerJson(absl::GetFlag(FLAGS_tokenizer_json));
  if (!tok.ok()) {
    std::fprintf(stderr, "%s\n", tok.status().ToString().c_str());
    return 1;
  }
  const double load_s = Seconds(t0, Clock::now());
  std::ifstream in(absl::GetFlag(FLAGS_gsm8k));
  if (!in) {
    std::fprintf(stderr, "cannot open --gsm8k=%s\n", absl::GetFlag(FLAGS_gsm8k).c_str());
    return 1;
  }
  std::vector<std::string> texts;
  size_t bytes = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const nlohmann::json row = nlohmann::json::parse(line, nullptr, false);
    if (row.is_discarded()) continue;
    for (const char* field : {"question", "answer"}) {
      texts.push_back(row.value(field, ""));
      bytes += texts.back().size();
    }
  }
  // Untimed first pass: fills the BPE cache, as the HF side's warm-up does.
  uint64_t fnv = 0xcbf29ce484222325ULL;
  size_t n_ids = 0;
  for (const std::string& t : texts) {
    for (int32_t id : tok->Encode(t)) {
      for (int k = 0; k < 4; ++k) {
        fnv ^= (static_cast<uint32_t>(id) >> (8 * k)) & 0xFF;
        fnv *= 0x100000001b3ULL;
      }
      ++n_ids;
    }
  }
  double best = 1e30;
  size_t sink = 0;
  for (int r = 0; r < absl::GetFlag(FLAGS_rounds); ++r) {
    const auto start = Clock::now();
    for (const std::string& t : texts) sink += tok->Encode(t).size();
    best = std::min(best, Seconds(start, Clock::now()));
  }
  std::printf(
      "{\"load_s\": %.3f, \"texts\": %zu, \"bytes\": %zu, \"ids\": %zu, \"ids_fnv\": \"%016llx\", "
      "\"best_s\": %.4f, \"mb_per_s\": %.2f, \"sink\": %zu}\n",
      load_s, texts.size(), bytes, n_ids, static_cast<unsigned long long>(fnv), best, bytes / best / 1e6, sink);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return Run();
}
