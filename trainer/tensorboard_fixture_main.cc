// Writes TensorBoard event files with known scalars into argv[1], for
// tensorboard_test.sh (the `tensorboard` package reads them back).
//   tensorboard_fixture DIR            steps 0..2 (first run)
//   tensorboard_fixture DIR resume=1   a resumed run: a new file that starts
//                                      again at step 1, with other values
#include <cstdio>
#include <cstring>

#include "trainer/tensorboard_writer.h"

int main(int argc, char** argv) {
  if (argc != 2 && !(argc == 3 && std::strcmp(argv[2], "resume=1") == 0)) {
    std::fprintf(stderr, "usage: tensorboard_fixture DIR [resume=1]\n");
    return 2;
  }
  const bool resume = argc == 3;
  auto writer = moerl::TensorBoardWriter::Create(argv[1]);
  if (!writer.ok()) return 1;
  const int first = resume ? 1 : 0;
  if (resume && !(*writer)->WriteSessionStart(first).ok()) return 1;
  const double offset = resume ? 10.0 : 0.0;
  for (int step = first; step < 3; ++step) {
    const absl::Status s = (*writer)->WriteScalars(
        step, {{"ppo_actor/task_reward/avg", 0.25 * step + offset}, {"ppo_actor/update/grad_norm", 1.5 + step}});
    if (!s.ok()) return 1;
  }
  std::printf("%s\n", (*writer)->path().c_str());
  return 0;
}
