#include "rollout/server/server_run.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/config/cli.h"
#include "common/file_util.h"
#include "common/stage_timing.h"
#include "common/status.h"
#include "rollout/engine/decode_forward.h"
#include "rollout/server/http_server.h"

namespace moerl {
namespace {

bool Exists(const std::string& path) {
  struct stat info;
  return ::stat(path.c_str(), &info) == 0;
}

absl::Status WriteAtomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    out.flush();
    if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", tmp, " (server.address_file)"));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot rename ", tmp, " to ", path));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ServerSettings> LoadServerSettings(const std::vector<std::string>& args) {
  MOERL_ASSIGN_OR_RETURN(CommandLine cli, ParseCommandLine(args, {}));
  MOERL_ASSIGN_OR_RETURN(ConfigTree tree, LoadConfig(cli));
  ServerSettings settings;
  MOERL_RETURN_IF_ERROR(settings.Load(tree));
  return settings;
}

absl::StatusOr<std::string> ResolveModelFolder(const std::string& path) {
  if (Exists(path + "/config.json")) return path;
  const std::string latest = path + "/LATEST";
  if (Exists(latest)) {
    std::ifstream in(latest);
    std::string line;
    std::getline(in, line);
    uint64_t n = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &n)) {
      return absl::DataLossError(absl::StrCat(latest, " should hold a version number, found \"", line, "\""));
    }
    const std::string folder = absl::StrCat(path, "/v", n);
    if (!Exists(folder + "/config.json")) {
      return absl::NotFoundError(absl::StrCat(latest, " names v", n, " but ", folder, "/config.json is missing"));
    }
    return folder;
  }
  return absl::NotFoundError(absl::StrCat(path, " has neither config.json (an HF checkpoint folder) nor LATEST (a ",
                                          "run's weights/ folder); point actor.path at one of them"));
}

SchedulerOptions ToSchedulerOptions(const ServerSettings& s, const std::string& model_folder) {
  SchedulerOptions o;
  o.model_path = model_folder;
  o.dtype = s.ResolvedDtype();
  o.max_running_requests = s.max_running_requests.value_or(16);
  o.context_length = s.context_length.value_or(0);
  o.deterministic = s.deterministic;
  o.batch_prefill = s.batch_prefill;
  if (s.deterministic_algorithms) {
    // A request's tokens must not depend on which others share its steps:
    // prefill each alone, and decode no more rows than the batch-invariant GEMM takes.
    o.batch_prefill = false;
    o.max_running_requests = std::min(o.max_running_requests, DecodeForward::kSmallGemmMaxRows);
  }
  o.weight_version = s.weight_version;
  if (o.weight_version.empty()) o.weight_version = VersionFromFolderName(model_folder).value_or("default");
  return o;
}

absl::Status RunServer(const ServerSettings& settings, const std::function<bool()>& should_stop) {
  MOERL_ASSIGN_OR_RETURN(std::string folder, ResolveModelFolder(settings.ModelPath()));
  // Where the time goes, in the log (docs/pipeline.md, "Stage timing").
  StageTiming timing("server");
  StageTimingReporter reporter(&timing, kStageTimingPeriod);
  SchedulerOptions options = ToSchedulerOptions(settings, folder);
  options.timing = &timing;
  MOERL_ASSIGN_OR_RETURN(std::unique_ptr<Scheduler> scheduler, Scheduler::Create(options));
  SglangHttpServer http(scheduler.get(), settings.http_threads, static_cast<uint64_t>(settings.Seed()), &timing);
  MOERL_ASSIGN_OR_RETURN(int port, http.Bind(settings.host, static_cast<int>(settings.port)));
  const std::string address = absl::StrCat("http://", settings.host, ":", port);
  absl::Status served;
  std::thread serve([&] { served = http.Serve(); });
  std::fprintf(stderr, "listening on %s (model %s, weight_version %s)\n", address.c_str(), folder.c_str(),
               scheduler->Info().weight_version.c_str());
  std::fflush(stderr);
  absl::Status status;
  if (!settings.address_file.empty()) status = WriteAtomically(settings.address_file, address + "\n");
  while (status.ok() && !should_stop()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  // Answer what runs (finish "abort") so that the HTTP workers, which Stop
  // joins, are not left waiting on long generations.
  scheduler->AbortAll("server shutting down");
  http.Stop();
  serve.join();
  scheduler.reset();
  MOERL_RETURN_IF_ERROR(status);
  return served;
}

}  // namespace moerl
