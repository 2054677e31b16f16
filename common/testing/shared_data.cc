#include "common/testing/shared_data.h"

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace moerl {
namespace {

bool Exists(const std::string& path) { return access(path.c_str(), R_OK) == 0; }

std::string Dirname(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

// The checkout's root, found through WORKSPACE in the test's runfiles (a
// symlink into the source tree) or the working directory; "" if neither.
std::string CheckoutRoot() {
  std::string marker = "WORKSPACE";
  if (const char* srcdir = std::getenv("TEST_SRCDIR"); srcdir != nullptr) {
    const char* workspace = std::getenv("TEST_WORKSPACE");
    marker = std::string(srcdir) + "/" + (workspace ? workspace : "moerl") + "/WORKSPACE";
  }
  char resolved[PATH_MAX];
  if (realpath(marker.c_str(), resolved) == nullptr) return "";
  return Dirname(resolved);
}

// Where data/... lives: $MOERL_SHARED_DIR, else the runfiles' third_party/
// (the //third_party/data filegroups), else the checkout's third_party/.
std::vector<std::string> DataRoots() {
  if (const char* env = std::getenv("MOERL_SHARED_DIR"); env != nullptr && *env) return {env};
  std::vector<std::string> roots;
  if (const char* srcdir = std::getenv("TEST_SRCDIR"); srcdir != nullptr) {
    const char* workspace = std::getenv("TEST_WORKSPACE");
    roots.push_back(std::string(srcdir) + "/" + (workspace ? workspace : "moerl") + "/third_party");
  }
  const std::string checkout = CheckoutRoot();
  if (!checkout.empty()) roots.push_back(checkout + "/third_party");
  return roots;
}

}  // namespace

std::string SharedDataPath(const std::string& relative) {
  for (const std::string& root : DataRoots()) {
    const std::string path = root + "/" + relative;
    char resolved[PATH_MAX];
    if (realpath(path.c_str(), resolved) != nullptr && Exists(resolved)) return resolved;
  }
  return "";
}

std::string MissingSharedDataMessage(const std::string& relative) {
  return "missing third_party/" + relative +
         ": this test reads data kept in the repository (//third_party/data); "
         "restore it from git, or set MOERL_SHARED_DIR to a folder holding " + relative;
}

}  // namespace moerl
