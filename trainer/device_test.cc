// trainer.device on any build: the choices, the errors of a cuda request
// that cannot be met, and that an explicit trainer.device=cpu trains exactly
// as the default does on a host-only machine.
#include "trainer/device.h"

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/weights_dir.h"
#include "gtest/gtest.h"
#include "trainer/testing/trainer_fixture.h"
#include "trainer/trainer_run.h"

namespace moerl {
namespace {

TEST(TrainerDevice, CpuIsTheHost) {
  auto type = TrainerDeviceType("cpu");
  ASSERT_TRUE(type.ok()) << type.status();
  EXPECT_EQ(*type, c10::DeviceType::CPU);
  auto device = TrainerDevice("cpu", 3);  // the local rank does not matter
  ASSERT_TRUE(device.ok()) << device.status();
  EXPECT_TRUE(device->is_cpu());
  EXPECT_EQ(DeviceName(*device), "cpu");
}

TEST(TrainerDevice, AutoIsCudaExactlyWhenAGpuIsVisible) {
  auto type = TrainerDeviceType("auto");
  ASSERT_TRUE(type.ok()) << type.status();
  EXPECT_EQ(*type, VisibleGpus() > 0 ? c10::DeviceType::CUDA : c10::DeviceType::CPU);
  if (!CudaBuild()) {
    EXPECT_EQ(VisibleGpus(), 0);
  }
}

// (No GTEST_SKIP in this file: tools/gpu_check.sh runs it on a GPU, where a
// skip counts as a failure.)
TEST(TrainerDevice, CudaWithoutCudaIsAClearError) {
  auto device = TrainerDevice("cuda", 0);
  if (VisibleGpus() > 0) {  // a GPU machine: cuda is cuda:0
    ASSERT_TRUE(device.ok()) << device.status();
    EXPECT_EQ(DeviceName(*device), "cuda:0");
    return;
  }
  ASSERT_FALSE(device.ok());
  EXPECT_EQ(device.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string message(device.status().message());
  EXPECT_NE(message.find("trainer.device=cuda"), std::string::npos) << message;
  if (CudaBuild()) {
    EXPECT_NE(message.find("no GPU is visible"), std::string::npos) << message;
    EXPECT_NE(message.find("CUDA_VISIBLE_DEVICES"), std::string::npos) << message;
  } else {
    EXPECT_NE(message.find("--config=cuda"), std::string::npos) << message;
  }
}

TEST(TrainerDevice, UnknownValueNamesTheChoices) {
  auto type = TrainerDeviceType("tpu");
  ASSERT_FALSE(type.ok());
  EXPECT_NE(type.status().message().find("auto, cpu or cuda"), std::string::npos) << type.status();
}

TEST(TrainerDevice, SettingsAcceptTheChoicesOnly) {
  const std::string root = FreshTestDir("device_settings");
  EXPECT_EQ(TestTrainerSettings(root, "t", {}).device, "auto");
  EXPECT_EQ(TestTrainerSettings(root, "t", {"+trainer.device=cpu"}).device, "cpu");
  EXPECT_EQ(TestTrainerSettings(root, "t", {"+trainer.device=cuda"}).device, "cuda");
}

// On a GPU machine auto means cuda (cuda_test compares the two): the default
// run then uses cpu explicitly as well.
TEST(TrainerDevice, ExplicitCpuTrainsLikeTheDefaultOnTheHost) {
  const std::string root = FreshTestDir("device_cpu");
  const TrainerSettings by_default = TestTrainerSettings(
      root, "auto",
      VisibleGpus() > 0 ? std::vector<std::string>{"+trainer.device=cpu", "+total_train_steps=2"}
                        : std::vector<std::string>{"+total_train_steps=2"});
  const TrainerSettings cpu = TestTrainerSettings(root, "cpu", {"+trainer.device=cpu", "+total_train_steps=2"});
  WriteTestBatches(by_default.BatchesDir(), 2, 2, 5);
  std::filesystem::create_directories(cpu.BatchesDir());
  for (int b = 0; b < 2; ++b) {
    std::filesystem::copy_file(absl::StrFormat("%s/%06d.rec", by_default.BatchesDir(), b),
                               absl::StrFormat("%s/%06d.rec", cpu.BatchesDir(), b));
  }
  for (const TrainerSettings* s : {&by_default, &cpu}) {
    TrainerReport report;
    const absl::Status status = RunTrainer(*s, nullptr, &report);
    ASSERT_TRUE(status.ok()) << status;
    EXPECT_EQ(report.steps_done, 2);
  }
  const std::string weights = "/model.safetensors";
  const std::string a = ReadTestFile(VersionDir(by_default.WeightsDir(), 2) + weights);
  const std::string b = ReadTestFile(VersionDir(cpu.WeightsDir(), 2) + weights);
  ASSERT_FALSE(a.empty());
  EXPECT_TRUE(a == b) << "trainer.device=cpu published other weights than the default";
  EXPECT_EQ(ReadTestFile(by_default.StatsPath()).size() > 0, true);
}

}  // namespace
}  // namespace moerl
