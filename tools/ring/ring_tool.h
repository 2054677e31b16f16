// `ring`: create, stat, drain and remove shared-memory rings (ShmRing), so a
// person or the pipeline script can see and manage what flows between stages.
//
//   ring create exp1.trial0.prompts --capacity_bytes=67108864 --mode=ack --owner_pid=$$
//   ring stat   exp1.trial0.prompts [--json]
//   ring drain  exp1.trial0.prompts [--output=left.rec] [--max_messages=N]
//   ring remove exp1.trial0.prompts
//
// `drain` takes every queued message (as a consumer, acknowledging each in
// acknowledged mode) until the ring is empty or ends, optionally writing
// them to a record file that `inspect` can print.
//
// The library holds everything; ring_main.cc parses flags into a
// RingCommand. No state; RunRingCommand may be called from any thread.
#ifndef MOERL_TOOLS_RING_RING_TOOL_H_
#define MOERL_TOOLS_RING_RING_TOOL_H_

#include <cstdint>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "common/transport/message_ring.h"

namespace moerl {

struct RingCommand {
  std::string verb = "";  // create | stat | drain | remove
  std::string name = "";  // <experiment>.<trial>.<hop>
  // create
  uint64_t capacity_bytes = 64 << 20;
  std::string mode = "plain";  // plain | ack
  uint32_t expected_producers = 0;
  int owner_pid = 0;  // 0: the parent of this process (the calling script)
  bool reclaim_stale = false;
  bool checksum = true;
  // stat
  bool json = false;
  // drain
  std::string output = "";  // record file; empty: count only
  uint64_t max_messages = UINT64_MAX;
};

absl::Status RunRingCommand(const RingCommand& command, std::ostream& out);

// "plain" | "ack" (also "acknowledged").
absl::Status ParseDeliveryMode(const std::string& text, DeliveryMode* mode);

}  // namespace moerl

#endif  // MOERL_TOOLS_RING_RING_TOOL_H_
