// ring: manage shared-memory rings. See tools/ring/ring_tool.h.
//   bazel run //tools/ring -- stat exp1.trial0.prompts
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "tools/ring/ring_tool.h"

ABSL_FLAG(uint64_t, capacity_bytes, 64 << 20, "create: bytes for messages");
ABSL_FLAG(std::string, mode, "plain", "create: plain or ack");
ABSL_FLAG(uint32_t, expected_producers, 0, "create: end of stream waits for this many producers");
ABSL_FLAG(int, owner_pid, 0, "create: process the ring belongs to, for stale detection (default: the caller, e.g. the pipeline script)");
ABSL_FLAG(bool, reclaim_stale, false, "create: replace a ring left over by a crashed run");
ABSL_FLAG(bool, checksum, true, "create: checksum every message (RingChecksum, verified on pop)");
ABSL_FLAG(bool, json, false, "stat: one JSON object");
ABSL_FLAG(std::string, output, "", "drain: record file to write the drained messages to");
ABSL_FLAG(uint64_t, max_messages, UINT64_MAX, "drain: stop after this many");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("ring create|stat|drain|remove <experiment>.<trial>.<hop> [flags]");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  moerl::RingCommand command;
  if (args.size() != 3) {
    std::cerr << "usage: ring create|stat|drain|remove <experiment>.<trial>.<hop> [flags]\n";
    return 2;
  }
  command.verb = args[1];
  command.name = args[2];
  command.capacity_bytes = absl::GetFlag(FLAGS_capacity_bytes);
  command.mode = absl::GetFlag(FLAGS_mode);
  command.expected_producers = absl::GetFlag(FLAGS_expected_producers);
  command.owner_pid = absl::GetFlag(FLAGS_owner_pid);
  command.reclaim_stale = absl::GetFlag(FLAGS_reclaim_stale);
  command.checksum = absl::GetFlag(FLAGS_checksum);
  command.json = absl::GetFlag(FLAGS_json);
  command.output = absl::GetFlag(FLAGS_output);
  command.max_messages = absl::GetFlag(FLAGS_max_messages);
  const absl::Status status = moerl::RunRingCommand(command, std::cout);
  if (!status.ok()) {
    std::cerr << "ring: " << status.message() << "\n";
    return 1;
  }
  return 0;
}
