// Proof that LibTorch, Protobuf, Abseil and Boost.Interprocess live in one
// binary: each library does real work, and the C++ ABIs agree (the torch
// wheel is built with the C++11 std::string ABI; so must we be).
#include <unistd.h>

#include <string>

#include <boost/interprocess/managed_shared_memory.hpp>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/proto/formats.h"
#include "common/proto/trajectory.pb.h"
#include "common/status.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

static_assert(_GLIBCXX_USE_CXX11_ABI == 1,
              "the torch wheel uses the C++11 ABI; build with it too");

// torch/torch.h is included above, and the wheel ships Protobuf 3.13 headers
// of its own: the ones our generated code sees must be the system's 3.21,
// the version of the protoc that generated it and of the library we link.
static_assert(GOOGLE_PROTOBUF_VERSION == 3021012,
              "a Protobuf header other than the system's shadows the system one");

TEST(LinkTest, TorchAutogradStep) {
  torch::manual_seed(0);
  // Least squares on y = 3x: one SGD step must reduce the loss.
  torch::Tensor x_n = torch::linspace(-1.0, 1.0, 16);
  torch::Tensor y_n = 3.0 * x_n;
  torch::Tensor w = torch::zeros({1}, torch::requires_grad());
  torch::Tensor loss = (w * x_n - y_n).pow(2).mean();
  loss.backward();
  ASSERT_TRUE(w.grad().defined());
  // d/dw mean((w x - 3x)^2) at w=0 is -6 mean(x^2).
  const double expected_grad = -6.0 * x_n.pow(2).mean().item<double>();
  EXPECT_NEAR(w.grad().item<double>(), expected_grad, 1e-6);
  {
    torch::NoGradGuard no_grad;
    w -= 0.5 * w.grad();
  }
  torch::Tensor new_loss = (w * x_n - y_n).pow(2).mean();
  EXPECT_LT(new_loss.item<double>(), loss.item<double>());
}

TEST(LinkTest, StdStringCrossesTheTorchBoundary) {
  // c10::Device parses a std::string inside libc10: an ABI mismatch would
  // fail to link or crash here.
  c10::Device device(std::string("cpu"));
  EXPECT_TRUE(device.is_cpu());
  EXPECT_EQ(device.str(), "cpu");
  torch::Tensor t = torch::arange(3);
  EXPECT_EQ(std::string(t.dtype().name()), "long int");
}

TEST(LinkTest, ProtobufRoundTrip) {
  proto::TrajectoryBatch batch;
  batch.set_format_version(kTrajectoryBatchFormatVersion);
  batch.set_batch_index(7);
  proto::Trajectory* trajectory = batch.add_trajectories();
  trajectory->set_group_id("g-1");
  trajectory->add_output_tokens(42);
  trajectory->add_output_logprobs(-0.25f);
  trajectory->set_finish_reason(proto::FINISH_REASON_STOP);
  std::string bytes;
  ASSERT_TRUE(batch.SerializeToString(&bytes));
  proto::TrajectoryBatch parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  EXPECT_EQ(parsed.batch_index(), 7u);
  ASSERT_EQ(parsed.trajectories_size(), 1);
  EXPECT_EQ(parsed.trajectories(0).group_id(), "g-1");
  EXPECT_EQ(parsed.trajectories(0).output_tokens(0), 42);
  EXPECT_FLOAT_EQ(parsed.trajectories(0).output_logprobs(0), -0.25f);
  EXPECT_EQ(parsed.trajectories(0).finish_reason(), proto::FINISH_REASON_STOP);
  EXPECT_FALSE(parsed.ParseFromString(std::string("\xff\xff\xff", 3)));
}

TEST(LinkTest, BoostInterprocessSegmentLifecycle) {
  namespace bip = boost::interprocess;
  const std::string name = absl::StrFormat("moerl_link_test_%d", getpid());
  bip::shared_memory_object::remove(name.c_str());
  {
    bip::managed_shared_memory segment(bip::create_only, name.c_str(), 1 << 16);
    int* counter = segment.construct<int>("counter")(41);
    ASSERT_NE(counter, nullptr);
    bip::managed_shared_memory reopened(bip::open_only, name.c_str());
    std::pair<int*, std::size_t> found = reopened.find<int>("counter");
    ASSERT_NE(found.first, nullptr);
    ++*found.first;
    EXPECT_EQ(*counter, 42);
  }
  EXPECT_TRUE(bip::shared_memory_object::remove(name.c_str()));
  EXPECT_THROW(bip::managed_shared_memory(bip::open_only, name.c_str()),
               bip::interprocess_exception);
}

TEST(LinkTest, AbseilStatusOr) {
  absl::StatusOr<std::string> value = absl::StrCat("torch ", TORCH_VERSION);
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(value->rfind("torch 2.11", 0), 0u) << *value;
}

}  // namespace
}  // namespace moerl
