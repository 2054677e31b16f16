// A main() for libFuzzer entry points when libFuzzer is not linked in (gcc,
// CI): replays every file named on the command line, then runs
// --iterations=N seeded inputs, half random bytes and half mutations of the
// corpus files. A crash, sanitizer report or abort fails the test; so does
// an entry point that returns non-zero.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/file_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

int RunOne(const std::string& input) {
  // A private heap copy, so that reads past the end are caught by ASan.
  std::vector<uint8_t> copy(input.begin(), input.end());
  return LLVMFuzzerTestOneInput(copy.empty() ? nullptr : copy.data(), copy.size());
}

}  // namespace

int main(int argc, char** argv) {
  long iterations = 10000;
  std::vector<std::string> corpus;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--iterations=", 13) == 0) {
      iterations = std::strtol(argv[i] + 13, nullptr, 10);
      continue;
    }
    absl::StatusOr<std::string> input = moerl::ReadFileToString(argv[i], "corpus file");
    if (!input.ok()) {
      std::fprintf(stderr, "fuzz_driver: %s\n", std::string(input.status().message()).c_str());
      return 2;
    }
    corpus.push_back(*std::move(input));
  }
  for (const std::string& input : corpus) {
    if (RunOne(input) != 0) return 1;
  }
  std::mt19937_64 rng(0x6d6f65726c);  // fixed: the smoke test is reproducible
  for (long i = 0; i < iterations; ++i) {
    std::string input;
    if (!corpus.empty() && (i & 1)) {
      input = corpus[rng() % corpus.size()];
      const int edits = 1 + static_cast<int>(rng() % 8);
      for (int e = 0; e < edits; ++e) {
        const uint64_t op = rng() % 3;
        if (op == 0 && !input.empty()) {
          input[rng() % input.size()] = static_cast<char>(rng());
        } else if (op == 1 && !input.empty()) {
          input.resize(rng() % input.size());
        } else {
          input.insert(input.begin() + (input.empty() ? 0 : rng() % input.size()),
                       static_cast<char>(rng()));
        }
      }
    } else {
      input.resize(rng() % 256);
      for (char& c : input) c = static_cast<char>(rng());
    }
    if (RunOne(input) != 0) return 1;
  }
  std::printf("fuzz_driver: %zu corpus files and %ld generated inputs ran clean\n",
              corpus.size(), iterations);
  return 0;
}
