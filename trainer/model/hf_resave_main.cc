// hf_resave IN_DIR OUT_DIR [bf16]: loads an HF Qwen3 / Qwen3-MoE checkpoint
// into moerl's model and saves it again (HF layout, 2 GiB shards).
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>

#include "trainer/model/hf_weights.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: hf_resave IN_DIR OUT_DIR [bf16]\n";
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
  absl::Status s = moerl::SaveHfCheckpoint(**model, argv[2], bf16 ? at::kBFloat16 : at::kFloat, 2ull << 30);
  if (!s.ok()) {
    std::cerr << s << "\n";
    return 1;
  }
  return 0;
}
