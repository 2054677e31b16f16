#include "common/config/writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace moerl {

absl::Status WriteResolvedConfig(const ConfigTree& tree, const std::string& run_dir) {
  std::error_code error;
  std::filesystem::create_directories(run_dir, error);
  if (error) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create run directory '", run_dir, "': ", error.message()));
  }
  YAML::Emitter emitter;
  emitter << tree.root();
  if (!emitter.good()) {
    return absl::InternalError(absl::StrCat("cannot emit the config as YAML: ", emitter.GetLastError()));
  }
  const std::string text = absl::StrCat(
      "# Resolved configuration (YAML + overrides + interpolation) of this run.\n", emitter.c_str(),
      "\n");
  const std::string path = run_dir + "/config.yaml";
  const std::string temp = absl::StrCat(path, ".tmp.", getpid());
  const int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::PermissionDeniedError(absl::StrCat("cannot write '", temp, "': ", std::strerror(errno)));
  }
  size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = std::strerror(errno);
      close(fd);
      unlink(temp.c_str());
      return absl::DataLossError(absl::StrCat("writing '", temp, "' failed: ", why));
    }
    written += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    const std::string why = std::strerror(errno);
    unlink(temp.c_str());
    return absl::DataLossError(absl::StrCat("flushing '", temp, "' failed: ", why));
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    unlink(temp.c_str());
    return absl::DataLossError(absl::StrCat("renaming '", temp, "' to '", path, "' failed: ", why));
  }
  return absl::OkStatus();
}

}  // namespace moerl
