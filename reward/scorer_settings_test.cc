// The reward_scorer binary's configuration keys and their errors.
#include "reward/scorer_settings.h"

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "reward/scorer_run.h"

namespace moerl {
namespace {

std::string TmpPath(const std::string& name) {
  return std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
}

absl::StatusOr<ScorerRunOptions> Load(std::vector<std::string> overrides) {
  const std::string path = TmpPath("scorer.yaml");
  std::ofstream(path) << "experiment_name: gsm8k-grpo\n"
                         "trial_name: trial0\n"
                         "cluster:\n"
                         "  fileroot: /tmp/moerl-test\n"
                         "gconfig:\n"
                         "  n_samples: 4\n"
                         "train_dataset:\n"
                         "  batch_size: 8\n"
                         "  path: ignored-by-the-scorer.jsonl\n"
                         "reward:\n"
                         "  ring: gsm8k-grpo.trial0.trajectories\n";
  std::vector<std::string> args = {"--config", path};
  args.insert(args.end(), overrides.begin(), overrides.end());
  return LoadScorerRunOptions(args);
}

TEST(LoadScorerRunOptions, ReadsArealKeysAndDerivesTheBatchDirectory) {
  absl::StatusOr<ScorerRunOptions> options = Load({});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->scorer.n_samples, 4u);
  EXPECT_EQ(options->scorer.batch_size, 8u);
  EXPECT_EQ(options->ring, "gsm8k-grpo.trial0.trajectories");
  EXPECT_EQ(options->output_dir, "/tmp/moerl-test/gsm8k-grpo/trial0/batches");
  EXPECT_EQ(options->scorer.message_kind, MessageKind::kTrajectory);
  EXPECT_EQ(options->scorer.unit_rule, UnitRule::kMathVerify);

  options = Load({"~reward.ring", "+reward.input_path=t.rec", "+reward.output_dir=out",
                  "+reward.group_messages=true", "gconfig.n_samples=2"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->input_path, "t.rec");
  EXPECT_EQ(options->output_dir, "out");
  EXPECT_EQ(options->scorer.n_samples, 2u);
  EXPECT_EQ(options->scorer.message_kind, MessageKind::kGroup);

  options = Load({"+reward.lenient_units=true"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->scorer.unit_rule, UnitRule::kLenient);
}

TEST(LoadScorerRunOptions, AnUnknownRewardKeyIsAnErrorNamingItsFullPath) {
  absl::StatusOr<ScorerRunOptions> options = Load({"+reward.output_dri=x"});
  ASSERT_FALSE(options.ok());
  EXPECT_TRUE(absl::StrContains(options.status().message(), "reward.output_dri"))
      << options.status();
  EXPECT_TRUE(absl::StrContains(options.status().message(), "reward.output_dir"))
      << options.status();
  // A misspelt section fails too.
  options = Load({"+gconfg.n_samples=4"});
  ASSERT_FALSE(options.ok());
  EXPECT_TRUE(absl::StrContains(options.status().message(), "gconfg")) << options.status();
}

TEST(LoadScorerRunOptions, BadValuesAreErrorsNamingTheKey) {
  struct Case {
    std::vector<std::string> overrides;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {{"gconfig.n_samples=0"}, "gconfig.n_samples"},
      {{"gconfig.n_samples=four"}, "gconfig.n_samples"},
      {{"train_dataset.batch_size=-1"}, "train_dataset.batch_size"},
      {{"+reward.input_path=t.rec"},
       "exactly one of reward.ring or reward.input_path; got "
       "reward.ring='gsm8k-grpo.trial0.trajectories', reward.input_path='t.rec'"},
      {{"~reward.ring"}, "exactly one of reward.ring or reward.input_path"},
      {{"~trial_name"}, "experiment_name and trial_name"},
      {{"experiment_name=bad_name"}, "experiment_name"},
      {{"+reward.poll_interval_s=0"}, "reward.poll_interval_s"},
      {{"+reward.group_messages=on"}, "reward.group_messages"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<ScorerRunOptions> options = Load(c.overrides);
    ASSERT_FALSE(options.ok()) << c.expected;
    EXPECT_TRUE(absl::StrContains(options.status().message(), c.expected))
        << "expected '" << c.expected << "' in: " << options.status();
  }
}

}  // namespace
}  // namespace moerl
