// inspect: print record files or a ring's contents. See tools/inspect/inspect.h.
//   bazel run //tools/inspect -- /path/to/batches/000001.rec --type=moerl.proto.TrajectoryBatch
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "tools/inspect/inspect.h"

ABSL_FLAG(std::string, type, "", "message type, e.g. moerl.proto.Trajectory (empty: sizes and hex)");
ABSL_FLAG(std::string, format, "text", "text (Protobuf text format) or json (one object a line)");
ABSL_FLAG(uint64_t, limit, UINT64_MAX, "print at most this many messages");
ABSL_FLAG(bool, recover, false, "record files: print the valid prefix of a damaged file");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("inspect <file.rec | ring:<experiment>.<trial>.<hop>> [--type=...] [--format=text|json]");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 2) {
    std::cerr << "usage: inspect <file.rec | ring:<experiment>.<trial>.<hop>> [--type=...] [--format=text|json]\n";
    return 2;
  }
  moerl::InspectCommand command;
  command.source = args[1];
  command.type = absl::GetFlag(FLAGS_type);
  command.format = absl::GetFlag(FLAGS_format);
  command.limit = absl::GetFlag(FLAGS_limit);
  command.recover = absl::GetFlag(FLAGS_recover);
  const absl::Status status = moerl::RunInspect(command, std::cout);
  if (!status.ok()) {
    std::cerr << "inspect: " << status.message() << "\n";
    return 1;
  }
  return 0;
}
