// ResolveModelPath on a fake Hugging Face cache under TEST_TMPDIR, laid out as
// huggingface_hub leaves it: models--<ns>--<name>/{refs/main, snapshots/<commit>/,
// blobs/}, snapshot files symlinked into blobs/.
#include "common/hf_cache.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class HfCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(std::getenv("TEST_TMPDIR")) /
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(root_);
    hub_ = root_ / "hub";
    fs::create_directories(hub_);
    env_["HF_HUB_CACHE"] = hub_.string();
  }

  EnvLookup Env() const {
    return [this](const char* name) -> const char* {
      auto it = env_.find(name);
      return it == env_.end() ? nullptr : it->second.c_str();
    };
  }

  static void Write(const fs::path& file, const std::string& text) {
    fs::create_directories(file.parent_path());
    std::ofstream(file) << text;
  }

  // A cached model: blobs, a snapshot of symlinks, and refs/main unless
  // `with_ref` is false. Returns the snapshot folder.
  fs::path AddModel(const std::string& folder, const std::string& commit, bool with_ref = true) {
    const fs::path model = hub_ / folder;
    Write(model / "blobs" / "aaa111", "{\"model_type\": \"qwen3_moe\"}");
    const fs::path snapshot = model / "snapshots" / commit;
    fs::create_directories(snapshot);
    fs::create_symlink("../../blobs/aaa111", snapshot / "config.json");
    if (with_ref) Write(model / "refs" / "main", commit);
    return snapshot;
  }

  fs::path root_, hub_;
  std::map<std::string, std::string> env_;
};

TEST_F(HfCacheTest, IdResolvesToTheSnapshotRefsMainNames) {
  AddModel("models--Qwen--Qwen3-30B-A3B", "0123abcd");
  // An older snapshot beside it must not be chosen.
  fs::create_directories(hub_ / "models--Qwen--Qwen3-30B-A3B" / "snapshots" / "00000000");
  absl::StatusOr<std::string> path = ResolveModelPath("Qwen/Qwen3-30B-A3B", Env());
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, (hub_ / "models--Qwen--Qwen3-30B-A3B" / "snapshots" / "0123abcd").string());
  // Its files are symlinks into blobs/ and read through.
  std::ifstream config(*path + "/config.json");
  std::string text((std::istreambuf_iterator<char>(config)), std::istreambuf_iterator<char>());
  EXPECT_THAT(text, HasSubstr("qwen3_moe"));
}

TEST_F(HfCacheTest, RefsMainWithATrailingNewlineIsAccepted) {
  const fs::path snapshot = AddModel("models--Qwen--Qwen3-0.6B", "feed", /*with_ref=*/false);
  Write(hub_ / "models--Qwen--Qwen3-0.6B" / "refs" / "main", "feed\n");
  absl::StatusOr<std::string> path = ResolveModelPath("Qwen/Qwen3-0.6B", Env());
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, snapshot.string());
}

TEST_F(HfCacheTest, WithoutRefsMainTheOnlySnapshotIsUsed) {
  const fs::path snapshot = AddModel("models--Qwen--Qwen3-30B-A3B", "beef", /*with_ref=*/false);
  absl::StatusOr<std::string> path = ResolveModelPath("Qwen/Qwen3-30B-A3B", Env());
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, snapshot.string());
}

TEST_F(HfCacheTest, WithoutRefsMainSeveralSnapshotsAreAmbiguous) {
  AddModel("models--Qwen--Qwen3-30B-A3B", "beef", /*with_ref=*/false);
  fs::create_directories(hub_ / "models--Qwen--Qwen3-30B-A3B" / "snapshots" / "cafe");
  absl::StatusOr<std::string> path = ResolveModelPath("Qwen/Qwen3-30B-A3B", Env());
  ASSERT_FALSE(path.ok());
  EXPECT_EQ(path.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(path.status().message()), HasSubstr("beef, cafe"));
}

TEST_F(HfCacheTest, RevisionNamedByRefsMainButMissingIsAnError) {
  const fs::path model = hub_ / "models--Qwen--Qwen3-30B-A3B";
  AddModel("models--Qwen--Qwen3-30B-A3B", "old1");
  Write(model / "refs" / "main", "new2");
  absl::StatusOr<std::string> path = ResolveModelPath("Qwen/Qwen3-30B-A3B", Env());
  ASSERT_FALSE(path.ok());
  EXPECT_EQ(path.status().code(), absl::StatusCode::kNotFound);
  const std::string message(path.status().message());
  EXPECT_THAT(message, HasSubstr("'new2'"));
  EXPECT_THAT(message, HasSubstr((model / "snapshots" / "new2").string()));
  EXPECT_THAT(message, HasSubstr("hf download Qwen/Qwen3-30B-A3B"));
}

TEST_F(HfCacheTest, AbsentIdSaysWhereItLookedAndHowToDownload) {
  absl::StatusOr<std::string> path = ResolveModelPath("Qwen/Qwen3-30B-A3B", Env());
  ASSERT_FALSE(path.ok());
  EXPECT_EQ(path.status().code(), absl::StatusCode::kNotFound);
  const std::string message(path.status().message());
  EXPECT_THAT(message, HasSubstr((hub_ / "models--Qwen--Qwen3-30B-A3B").string()));
  EXPECT_THAT(message, HasSubstr("$HF_HUB_CACHE"));
  EXPECT_THAT(message, HasSubstr("`hf download Qwen/Qwen3-30B-A3B`"));
  EXPECT_THAT(message, HasSubstr("`huggingface-cli download Qwen/Qwen3-30B-A3B`"));
}

TEST_F(HfCacheTest, AnExistingFolderWinsOverTheCache) {
  AddModel("models--Qwen--Qwen3-30B-A3B", "0123abcd");
  const fs::path local = root_ / "Qwen" / "Qwen3-30B-A3B";
  fs::create_directories(local);
  const fs::path cwd = fs::current_path();
  fs::current_path(root_);
  absl::StatusOr<std::string> path = ResolveModelPath("Qwen/Qwen3-30B-A3B", Env());
  fs::current_path(cwd);
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, "Qwen/Qwen3-30B-A3B");
}

TEST_F(HfCacheTest, PlainPathsPassThroughUnchecked) {
  for (const std::string p : {"", "/models/absent", "./absent", "absent/deeper/path", "~/m"}) {
    absl::StatusOr<std::string> path = ResolveModelPath(p, Env());
    ASSERT_TRUE(path.ok()) << p << ": " << path.status();
    EXPECT_EQ(*path, p);
  }
  const std::string existing = hub_.string();
  EXPECT_EQ(*ResolveModelPath(existing, Env()), existing);
}

TEST_F(HfCacheTest, SingleNameIdsAreLookedUpToo) {
  const fs::path snapshot = AddModel("models--gpt2", "c0ffee");
  absl::StatusOr<std::string> path = ResolveModelPath("gpt2", Env());
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, snapshot.string());
}

TEST(LooksLikeModelId, ShapesOfIds) {
  EXPECT_TRUE(LooksLikeModelId("Qwen/Qwen3-30B-A3B"));
  EXPECT_TRUE(LooksLikeModelId("Qwen/Qwen2.5-1.5B-Instruct"));
  EXPECT_TRUE(LooksLikeModelId("gpt2"));
  EXPECT_FALSE(LooksLikeModelId("/models/qwen"));
  EXPECT_FALSE(LooksLikeModelId("./qwen"));
  EXPECT_FALSE(LooksLikeModelId("../qwen"));
  EXPECT_FALSE(LooksLikeModelId("a/b/c"));
  EXPECT_FALSE(LooksLikeModelId("Qwen/"));
  EXPECT_FALSE(LooksLikeModelId("Qwen--x/y"));
  EXPECT_FALSE(LooksLikeModelId("~/qwen"));
}

TEST(HubCacheDir, FollowsHuggingFaceHubsOrder) {
  std::map<std::string, std::string> env = {{"HOME", "/home/u"}};
  auto lookup = [&env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  EXPECT_EQ(HubCacheDir(lookup), "/home/u/.cache/huggingface/hub");
  env["XDG_CACHE_HOME"] = "/xdg";
  EXPECT_EQ(HubCacheDir(lookup), "/xdg/huggingface/hub");
  env["HF_HOME"] = "/hf";
  EXPECT_EQ(HubCacheDir(lookup), "/hf/hub");
  env["HUGGINGFACE_HUB_CACHE"] = "/legacy";
  EXPECT_EQ(HubCacheDir(lookup), "/legacy");
  env["HF_HUB_CACHE"] = "/hub";
  EXPECT_EQ(HubCacheDir(lookup), "/hub");
}

}  // namespace
}  // namespace moerl
