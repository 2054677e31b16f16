// `inspect`: prints the messages of a record file or of a shared-memory ring
// as Protobuf text or JSON, so a person can see what is flowing.
//
//   inspect batches/000003.rec --type=moerl.proto.TrajectoryBatch
//   inspect ring:exp1.trial0.prompts --type=moerl.proto.Prompt --format=json
//   inspect crashed.rec.tmp.123.456 --recover      # the valid prefix
//
// Without --type each record is shown as its size and first bytes in hex.
// A ring is read without taking anything (ShmRing::Peek). A damaged record
// file prints what precedes the damage, then fails with the file and byte
// offset. Types are looked up among moerl.proto messages (common/proto).
//
// The library does the work; inspect_main.cc parses flags. No state.
#ifndef MOERL_TOOLS_INSPECT_INSPECT_H_
#define MOERL_TOOLS_INSPECT_INSPECT_H_

#include <cstdint>
#include <ostream>
#include <string>

#include "absl/status/status.h"

namespace moerl {

struct InspectCommand {
  // A record file path, or "ring:<experiment>.<trial>.<hop>".
  std::string source = "";
  // Fully qualified message type, e.g. moerl.proto.Trajectory; empty: raw.
  std::string type = "";
  std::string format = "text";  // text | json
  uint64_t limit = UINT64_MAX;
  bool recover = false;  // record files: keep the valid prefix of a damaged file
};

absl::Status RunInspect(const InspectCommand& command, std::ostream& out);

}  // namespace moerl

#endif  // MOERL_TOOLS_INSPECT_INSPECT_H_
