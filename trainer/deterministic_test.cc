#include "trainer/deterministic.h"

#include <ATen/Context.h>
#include <gtest/gtest.h>

#include <map>
#include <string>

namespace moerl {
namespace {

struct FakeEnv {
  std::map<std::string, std::string> vars;
  EnvLookup lookup() {
    return [this](const std::string& name) -> std::optional<std::string> {
      auto it = vars.find(name);
      if (it == vars.end()) return std::nullopt;
      return it->second;
    };
  }
  EnvSetter setter() {
    return [this](const std::string& name, const std::string& value) { vars[name] = value; };
  }
};

TEST(SetDeterministicEnvironment, FillsMegatronsDefaultsWhenUnset) {
  FakeEnv env;
  ASSERT_TRUE(SetDeterministicEnvironment(env.lookup(), env.setter()).ok());
  EXPECT_EQ(env.vars["NCCL_ALGO"], "Ring");
  EXPECT_EQ(env.vars["CUBLAS_WORKSPACE_CONFIG"], ":4096:8");
}

TEST(SetDeterministicEnvironment, KeepsAcceptedValues) {
  FakeEnv env;
  env.vars = {{"NCCL_ALGO", "CollnetChain"}, {"CUBLAS_WORKSPACE_CONFIG", ":16:8"}};
  ASSERT_TRUE(SetDeterministicEnvironment(env.lookup(), env.setter()).ok());
  EXPECT_EQ(env.vars["NCCL_ALGO"], "CollnetChain");
  EXPECT_EQ(env.vars["CUBLAS_WORKSPACE_CONFIG"], ":16:8");
}

TEST(SetDeterministicEnvironment, RejectsTreeAndOtherWorkspacesNamingTheVariable) {
  FakeEnv tree;
  tree.vars = {{"NCCL_ALGO", "Tree"}};
  absl::Status s = SetDeterministicEnvironment(tree.lookup(), tree.setter());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("NCCL_ALGO"), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find("\"Tree\""), absl::string_view::npos) << s;
  FakeEnv cublas;
  cublas.vars = {{"CUBLAS_WORKSPACE_CONFIG", ":0:0"}};
  s = SetDeterministicEnvironment(cublas.lookup(), cublas.setter());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("CUBLAS_WORKSPACE_CONFIG"), absl::string_view::npos) << s;
}

TEST(EnableDeterministicAlgorithms, SetsTorchsFlagNotWarnOnly) {
  EnableDeterministicAlgorithms();
  EXPECT_TRUE(at::globalContext().deterministicAlgorithms());
  EXPECT_FALSE(at::globalContext().deterministicAlgorithmsWarnOnly());
  EnableDeterministicAlgorithms(false);
  EXPECT_FALSE(at::globalContext().deterministicAlgorithms());
}

}  // namespace
}  // namespace moerl
