// Writes a TensorBoard event file with known scalars into argv[1], for
// tensorboard_test.sh (the `tensorboard` package reads it back).
#include <cstdio>

#include "trainer/tensorboard_writer.h"

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  auto writer = moerl::TensorBoardWriter::Create(argv[1]);
  if (!writer.ok()) return 1;
  for (int step = 0; step < 3; ++step) {
    const absl::Status s = (*writer)->WriteScalars(
        step, {{"ppo_actor/task_reward/avg", 0.25 * step}, {"ppo_actor/update/grad_norm", 1.5 + step}});
    if (!s.ok()) return 1;
  }
  std::printf("%s\n", (*writer)->path().c_str());
  return 0;
}
