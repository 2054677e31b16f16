#include "trainer/stats_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"

namespace moerl {

void StatsRecorder::Stat(const std::string& name, double sum, double count, double min, double max) {
  Acc& a = stats_[name];
  a.sum += sum;
  a.count += count;
  if (count > 0) {
    a.min = std::min(a.min, min);
    a.max = std::max(a.max, max);
  }
}

void StatsRecorder::Denominator(const std::string& name, double value) { denominators_[name] += value; }

void StatsRecorder::Scalar(const std::string& name, double value) {
  Acc& a = scalars_[name];
  a.sum += value;
  a.count += 1;
  a.min = std::min(a.min, value);
  a.max = std::max(a.max, value);
}

std::vector<StatsRecorder::Entry> StatsRecorder::Entries() const {
  std::vector<Entry> out;
  for (const auto& [name, a] : stats_) out.push_back({"s:" + name, a.sum, a.count, a.min, a.max});
  for (const auto& [name, v] : denominators_) out.push_back({"d:" + name, v, 1, v, v});
  for (const auto& [name, a] : scalars_) out.push_back({"c:" + name, a.sum, a.count, a.min, a.max});
  return out;
}

void StatsRecorder::Merge(const Entry& e) {
  const std::string name = e.key.substr(2);
  if (e.key.rfind("d:", 0) == 0) {
    denominators_[name] += e.sum;
    return;
  }
  Acc& a = (e.key.rfind("s:", 0) == 0 ? stats_ : scalars_)[name];
  a.sum += e.sum;
  a.count += e.count;
  if (e.count > 0) {
    a.min = std::min(a.min, e.min);
    a.max = std::max(a.max, e.max);
  }
}

std::map<std::string, double> StatsRecorder::Flatten() const {
  std::map<std::string, double> out;
  for (const auto& [name, a] : stats_) {
    if (a.count <= 0) continue;
    out[name + "/avg"] = a.sum / a.count;
    out[name + "/min"] = a.min;
    out[name + "/max"] = a.max;
  }
  for (const auto& [name, v] : denominators_) out[name] = v;
  for (const auto& [name, a] : scalars_) {
    out[name] = a.sum / a.count;
    out[name + "__count"] = a.count;
  }
  return out;
}

double StatsRecorder::Value(const std::string& name) const {
  if (auto it = stats_.find(name); it != stats_.end() && it->second.count > 0) {
    return it->second.sum / it->second.count;
  }
  if (auto it = scalars_.find(name); it != scalars_.end()) return it->second.sum / it->second.count;
  if (auto it = denominators_.find(name); it != denominators_.end()) return it->second;
  return std::nan("");
}

absl::Status StatsLog::Append(int64_t step, const std::map<std::string, double>& values) const {
  nlohmann::json line = {{"step", step},
                         {"wall_time", absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch())}};
  for (const auto& [name, v] : values) {
    line[name] = std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
  }
  const std::string text = line.dump() + "\n";
  const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::PermissionDeniedError(absl::StrCat("cannot open '", path_, "': ", std::strerror(errno)));
  }
  const ssize_t n = ::write(fd, text.data(), text.size());
  const int err = errno;
  ::fsync(fd);
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size())) {
    return absl::DataLossError(absl::StrCat("cannot append to '", path_, "': ", std::strerror(err)));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> StatsLog::DropFromStep(int64_t step) const {
  std::ifstream in(path_, std::ios::binary);
  if (!in) return int64_t{0};  // nothing logged yet
  std::string kept, line;
  int64_t dropped = 0;
  while (std::getline(in, line)) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("step") && j["step"].is_number_integer() && j["step"].get<int64_t>() < step) {
      kept += line + "\n";
    } else {
      ++dropped;
    }
  }
  in.close();
  if (dropped == 0) return dropped;
  const std::string temp = absl::StrCat(path_, ".tmp-", ::getpid());
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::PermissionDeniedError(absl::StrCat("cannot create '", temp, "': ", std::strerror(errno)));
  const bool wrote = ::write(fd, kept.data(), kept.size()) == static_cast<ssize_t>(kept.size()) && ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!wrote || ::rename(temp.c_str(), path_.c_str()) != 0) {
    const int rename_err = wrote ? errno : err;
    ::unlink(temp.c_str());
    return absl::DataLossError(absl::StrCat("cannot rewrite '", path_, "': ", std::strerror(rename_err)));
  }
  return dropped;
}

}  // namespace moerl
