// For trainer_kill_recover_test.sh: checks what a recovering trainer could
// read in a run folder right after the trainer was killed.
//   recovery_check <run dir>
// Every visible checkpoints/step-<N> passes VerifyTrainerCheckpoint (its
// manifest and every file it lists); every visible weights/v<N> opens as a
// Hugging Face folder with config.json and probe.json; weights/LATEST names
// one of them. Prints "ok: <checkpoints> checkpoints, <versions> versions,
// hidden: <names>" (hidden names are writes the kill interrupted), else
// "FAIL: ..." and exits 1.
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/safetensors/checkpoint_dir.h"
#include "common/weights_dir.h"
#include "trainer/checkpoint.h"

namespace {

int Fail(const std::string& what) {
  std::printf("FAIL: %s\n", what.c_str());
  return 1;
}

std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    out.push_back(it->path().filename().string());
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return Fail("usage: recovery_check <run dir>");
  const std::string run = argv[1];
  std::vector<std::string> hidden;
  int checkpoints = 0, versions = 0;
  for (const std::string& name : Names(run + "/checkpoints")) {
    if (absl::StartsWith(name, ".")) {
      hidden.push_back("checkpoints/" + name);
      continue;
    }
    if (!absl::StartsWith(name, "step-")) return Fail(absl::StrCat("unexpected checkpoints/", name));
    const absl::Status ok = moerl::VerifyTrainerCheckpoint(absl::StrCat(run, "/checkpoints/", name));
    if (!ok.ok()) return Fail(absl::StrCat("checkpoints/", name, " is visible but incomplete: ", ok.ToString()));
    ++checkpoints;
  }
  const std::string weights = run + "/weights";
  for (const std::string& name : Names(weights)) {
    if (absl::StartsWith(name, ".")) {
      hidden.push_back("weights/" + name);
      continue;
    }
    if (name == moerl::kLatestFileName) continue;
    const std::string dir = absl::StrCat(weights, "/", name);
    auto opened = moerl::CheckpointDir::Open(dir);
    if (!opened.ok()) return Fail(absl::StrCat("weights/", name, " does not open: ", opened.status().ToString()));
    for (const char* file : {"config.json", "probe.json"}) {
      if (!std::filesystem::is_regular_file(absl::StrCat(dir, "/", file))) {
        return Fail(absl::StrCat("weights/", name, " has no ", file));
      }
    }
    ++versions;
  }
  auto latest = moerl::ReadLatestVersion(weights);
  if (latest.ok() && !std::filesystem::is_directory(moerl::VersionDir(weights, *latest))) {
    return Fail(absl::StrCat("weights/LATEST names v", *latest, ", which is missing"));
  }
  if (!latest.ok() && latest.status().code() != absl::StatusCode::kNotFound) {
    return Fail(latest.status().ToString());
  }
  std::printf("ok: %d checkpoints, %d versions, hidden: %s\n", checkpoints, versions,
              hidden.empty() ? "none" : absl::StrJoin(hidden, " ").c_str());
  return 0;
}
