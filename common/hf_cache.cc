#include "common/hf_cache.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"

namespace moerl {
namespace {

namespace fs = std::filesystem;

struct HubCache {
  std::string dir;
  std::string source;  // which variable chose it, for error messages
};

HubCache FindHubCache(const EnvLookup& env) {
  auto set = [&env](const char* name) -> std::string {
    const char* value = env(name);
    return value == nullptr ? "" : value;
  };
  if (std::string v = set("HF_HUB_CACHE"); !v.empty()) return {v, "$HF_HUB_CACHE"};
  if (std::string v = set("HUGGINGFACE_HUB_CACHE"); !v.empty()) return {v, "$HUGGINGFACE_HUB_CACHE"};
  if (std::string v = set("HF_HOME"); !v.empty()) return {v + "/hub", "$HF_HOME/hub"};
  if (std::string v = set("XDG_CACHE_HOME"); !v.empty()) {
    return {v + "/huggingface/hub", "$XDG_CACHE_HOME/huggingface/hub"};
  }
  return {set("HOME") + "/.cache/huggingface/hub", "the default, ~/.cache/huggingface/hub"};
}

bool IsIdPart(absl::string_view part) {
  if (part.empty() || part.size() > 96 || part[0] == '.' || part[0] == '-') return false;
  for (char c : part) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return part.find("..") == absl::string_view::npos && part.find("--") == absl::string_view::npos;
}

std::string DownloadHint(const std::string& id, const HubCache& cache) {
  return absl::StrCat("download it with `hf download ", id, "` (or `huggingface-cli download ", id,
                      "`), point HF_HUB_CACHE or HF_HOME at the cache that holds it (looked in ",
                      cache.dir, ", ", cache.source, "), or give the model's folder");
}

// The snapshot folders of a cached model, sorted.
std::vector<std::string> Snapshots(const fs::path& model_dir) {
  std::vector<std::string> out;
  std::error_code error;
  for (fs::directory_iterator it(model_dir / "snapshots", error), end; !error && it != end;
       it.increment(error)) {
    if (it->is_directory(error)) out.push_back(it->path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

std::string HubCacheDir(const EnvLookup& env) { return FindHubCache(env).dir; }
std::string HubCacheDir() { return HubCacheDir([](const char* name) { return std::getenv(name); }); }

bool LooksLikeModelId(const std::string& text) {
  const std::vector<absl::string_view> parts = absl::StrSplit(text, '/');
  if (parts.size() > 2) return false;
  for (absl::string_view part : parts) {
    if (!IsIdPart(part)) return false;
  }
  return true;
}

absl::StatusOr<std::string> ResolveModelPath(const std::string& path_or_id, const EnvLookup& env) {
  if (path_or_id.empty()) return path_or_id;
  std::error_code error;
  if (fs::exists(path_or_id, error)) return path_or_id;
  if (!LooksLikeModelId(path_or_id)) return path_or_id;

  const HubCache cache = FindHubCache(env);
  const std::string id = path_or_id;
  const fs::path model_dir =
      fs::path(cache.dir) / absl::StrCat("models--", absl::StrJoin(absl::StrSplit(id, '/'), "--"));
  if (!fs::is_directory(model_dir, error)) {
    return absl::NotFoundError(absl::StrCat("'", id, "' is neither an existing path nor a model in the ",
                                            "Hugging Face cache (no folder ", model_dir.string(),
                                            "); ", DownloadHint(id, cache)));
  }
  const fs::path ref = model_dir / "refs" / "main";
  if (fs::exists(ref, error)) {
    absl::StatusOr<std::string> commit = ReadFileToString(ref.string(), "Hugging Face cache ref");
    if (!commit.ok()) return commit.status();
    const std::string hash(absl::StripAsciiWhitespace(*commit));
    const fs::path snapshot = model_dir / "snapshots" / hash;
    if (hash.empty() || !fs::is_directory(snapshot, error)) {
      return absl::NotFoundError(absl::StrCat(
          "'", id, "': the Hugging Face cache's ", ref.string(), " names revision '", hash,
          "' but ", snapshot.string(), " does not exist (an interrupted download?); ",
          DownloadHint(id, cache)));
    }
    return snapshot.string();
  }
  const std::vector<std::string> snapshots = Snapshots(model_dir);
  if (snapshots.size() == 1) return (model_dir / "snapshots" / snapshots[0]).string();
  if (snapshots.empty()) {
    return absl::NotFoundError(absl::StrCat("'", id, "': the Hugging Face cache folder ",
                                            model_dir.string(), " holds no snapshot; ",
                                            DownloadHint(id, cache)));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "'", id, "': the Hugging Face cache folder ", model_dir.string(),
      " has no refs/main and several snapshots (", absl::StrJoin(snapshots, ", "),
      "); give the folder of the one to use, e.g. ",
      (model_dir / "snapshots" / snapshots[0]).string()));
}

absl::StatusOr<std::string> ResolveModelPath(const std::string& path_or_id) {
  return ResolveModelPath(path_or_id, [](const char* name) { return std::getenv(name); });
}

absl::Status ResolveModelPathKey(const std::string& key, std::string* value) {
  absl::StatusOr<std::string> resolved = ResolveModelPath(*value);
  if (!resolved.ok()) {
    return absl::Status(resolved.status().code(),
                        absl::StrCat("key '", key, "': ", resolved.status().message()));
  }
  *value = *std::move(resolved);
  return absl::OkStatus();
}

}  // namespace moerl
