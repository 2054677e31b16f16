// Model paths that may be Hugging Face model ids: `actor.path:
// Qwen/Qwen3-30B-A3B` names the snapshot the local Hugging Face cache holds
// for that id, as AReaL's configs (which hand the id to transformers) mean it.
//
//   MOERL_ASSIGN_OR_RETURN(std::string folder, ResolveModelPath("Qwen/Qwen3-30B-A3B"));
//   // "<hub cache>/models--Qwen--Qwen3-30B-A3B/snapshots/<commit>"
//   ResolveModelPath("/models/qwen3");  // unchanged: not an id (absolute)
//   ResolveModelPath("weights/v3");     // unchanged when it exists: a path wins
//
// Rules, in order:
//   1. "" stays "".
//   2. A path that exists (folder or file) is returned unchanged.
//   3. A string that is not shaped like a model id (`name` or
//      `namespace/name` of letters, digits, '-', '_', '.'; not starting with
//      '.', '/' or '~') is returned unchanged: the caller's loader reports
//      the missing path as before.
//   4. An id is looked up in the hub cache (HubCacheDir): the folder
//      models--<namespace>--<name>/; refs/main holds the commit of the main
//      revision, and snapshots/<commit>/ is the answer (its files are
//      usually symlinks into blobs/, which readers follow). Without
//      refs/main (a download by commit hash), a single snapshot is the
//      answer; several are ambiguous.
//   5. Otherwise NotFound, naming where it looked and how to download the
//      model (`hf download <id>`, or `huggingface-cli download <id>`).
//
// No network, no torch; reads the file system and the environment only.
// Thread-compatible (getenv).
#ifndef MOERL_COMMON_HF_CACHE_H_
#define MOERL_COMMON_HF_CACHE_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"

namespace moerl {

// Reads one environment variable; nullptr when unset. Injected by tests.
using EnvLookup = std::function<const char*(const char*)>;

// The hub cache folder huggingface_hub uses: $HF_HUB_CACHE, else
// $HUGGINGFACE_HUB_CACHE (its older name), else $HF_HOME/hub, else
// $XDG_CACHE_HOME/huggingface/hub, else $HOME/.cache/huggingface/hub.
std::string HubCacheDir(const EnvLookup& env);
std::string HubCacheDir();

// True when `text` has the shape of a Hugging Face model id (rule 3).
bool LooksLikeModelId(const std::string& text);

// The folder `path_or_id` names (rules above).
absl::StatusOr<std::string> ResolveModelPath(const std::string& path_or_id, const EnvLookup& env);
absl::StatusOr<std::string> ResolveModelPath(const std::string& path_or_id);

// ResolveModelPath on a config value in place; an error names the key.
//   MOERL_RETURN_IF_ERROR(ResolveModelPathKey("actor.path", &settings.actor_path));
absl::Status ResolveModelPathKey(const std::string& key, std::string* value);

}  // namespace moerl

#endif  // MOERL_COMMON_HF_CACHE_H_
