// hf_resave IN_DIR OUT_DIR [fp32|bf16 [SHARD_BYTES]]: loads an HF Qwen3 /
// Qwen3-MoE checkpoint into moerl's model and saves it again (HF layout,
// shards of at most SHARD_BYTES, default 2 GiB).
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>

#include "absl/strings/numbers.h"
#include "trainer/model/hf_weights.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: hf_resave IN_DIR OUT_DIR [fp32|bf16 [SHARD_BYTES]]\n";
    return 2;
  }
  if (const char* ws = std::getenv("BUILD_WORKSPACE_DIRECTORY")) {
    if (chdir(ws) != 0) return 1;
  }
  auto model = moerl::LoadHfModel(argv[1]);
  if (!model.ok()) {
    std::cerr << model.status() << "\n";
    return 1;
  }
  const bool bf16 = argc > 3 && std::string(argv[3]) == "bf16";
  uint64_t shard_bytes = 2ull << 30;
  if (argc > 4 && !absl::SimpleAtoi(argv[4], &shard_bytes)) {
    std::cerr << "hf_resave: SHARD_BYTES \"" << argv[4] << "\" is not a number\n";
    return 2;
  }
  absl::Status s =
      moerl::SaveHfCheckpoint(**model, argv[2], bf16 ? at::kBFloat16 : at::kFloat, shard_bytes);
  if (!s.ok()) {
    std::cerr << s << "\n";
    return 1;
  }
  return 0;
}
