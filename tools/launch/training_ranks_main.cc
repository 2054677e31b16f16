// training_ranks: how many processes the training allocation of an
// allocation_mode needs (its world size), for launchers.
//   training_ranks 'sglang:d2+megatron:(attn:d2|ffn:e2)'   # prints 2
// Exit 1 with the parser's message on bad input or without exactly one
// training allocation.
#include <iostream>

#include "common/alloc_mode/alloc_mode.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: training_ranks ALLOCATION_MODE\n";
    return 1;
  }
  auto mode = moerl::ParseAllocationMode(argv[1]);
  if (!mode.ok()) {
    std::cerr << "training_ranks: " << mode.status().message() << "\n";
    return 1;
  }
  const std::vector<int> training = mode->TrainingIndices();
  if (training.size() != 1) {
    std::cerr << "training_ranks: \"" << argv[1] << "\" has " << training.size()
              << " training allocations; expected one\n";
    return 1;
  }
  std::cout << mode->allocations[training[0]].dims.WorldSize() << "\n";
  return 0;
}
