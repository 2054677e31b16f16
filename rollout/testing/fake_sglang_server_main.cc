// fake_sglang_server: a ScriptedServer (rollout/testing/scripted_sglang_server.h)
// as a process, for shell tests of rollout_bridge. Listens on 127.0.0.1 at a
// free port, writes the port to --port_file, serves until SIGTERM/SIGINT.
//
//   fake_sglang_server --port_file=$TEST_TMPDIR/port &
#include <csignal>
#include <cstdio>
#include <fstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/clock.h"
#include "rollout/testing/scripted_sglang_server.h"

ABSL_FLAG(std::string, port_file, "", "file to write the port to");

namespace {
volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }
}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  moerl::ScriptedServer server;
  if (!server.Start()) {
    std::fprintf(stderr, "fake_sglang_server: cannot listen on 127.0.0.1\n");
    return 1;
  }
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  const std::string port_file = absl::GetFlag(FLAGS_port_file);
  if (!port_file.empty()) {
    std::ofstream(port_file + ".tmp") << server.port() << "\n";
    std::rename((port_file + ".tmp").c_str(), port_file.c_str());
  }
  while (!g_stop) absl::SleepFor(absl::Milliseconds(50));
  server.Stop();
  return 0;
}
