#include "common/testing/shared_data.h"

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace moerl {
namespace {

bool Exists(const std::string& path) { return access(path.c_str(), R_OK) == 0; }

std::string Dirname(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

std::string SharedRoot() {
  if (const char* env = std::getenv("MOERL_SHARED_DIR"); env != nullptr && *env) return env;
  std::string marker = "WORKSPACE";
  if (const char* srcdir = std::getenv("TEST_SRCDIR"); srcdir != nullptr) {
    const char* workspace = std::getenv("TEST_WORKSPACE");
    marker = std::string(srcdir) + "/" + (workspace ? workspace : "moerl") + "/WORKSPACE";
  }
  char resolved[PATH_MAX];
  if (realpath(marker.c_str(), resolved) == nullptr) return "";
  return Dirname(resolved) + "/../shared";
}

}  // namespace

std::string SharedDataPath(const std::string& relative) {
  const std::string root = SharedRoot();
  if (root.empty()) return "";
  const std::string path = root + "/" + relative;
  char resolved[PATH_MAX];
  if (realpath(path.c_str(), resolved) == nullptr || !Exists(resolved)) return "";
  return resolved;
}

std::string MissingSharedDataMessage(const std::string& relative) {
  return "missing ../shared/" + relative +
         ": this test reads the project's shared data, laid out beside the "
         "checkout (or set MOERL_SHARED_DIR to its folder)";
}

}  // namespace moerl
