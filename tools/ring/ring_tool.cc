#include "tools/ring/ring_tool.h"

#include <unistd.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "common/transport/record_io.h"
#include "common/transport/shm_ring.h"
#include "nlohmann/json.hpp"

namespace moerl {
namespace {

const char* ModeName(DeliveryMode mode) {
  return mode == DeliveryMode::kPlain ? "plain" : "ack";
}

absl::Status Create(const RingCommand& c, std::ostream& out) {
  ShmRing::CreateOptions options;
  options.capacity_bytes = c.capacity_bytes;
  MOERL_RETURN_IF_ERROR(ParseDeliveryMode(c.mode, &options.mode));
  options.expected_producers = c.expected_producers;
  // The tool exits right away; the ring belongs to whoever ran it (the
  // pipeline script), so that it is not stale the moment it exists.
  options.owner_pid = c.owner_pid > 0 ? c.owner_pid : ::getppid();
  options.reclaim_stale = c.reclaim_stale;
  options.checksum_payloads = c.checksum;
  MOERL_RETURN_IF_ERROR(ShmRing::Create(c.name, options));
  out << "created ring " << c.name << " (" << ShmRing::SegmentPath(c.name) << ", " << ModeName(options.mode)
      << ", " << c.capacity_bytes << " bytes)\n";
  return absl::OkStatus();
}

absl::Status Stat(const RingCommand& c, std::ostream& out) {
  MOERL_ASSIGN_OR_RETURN(std::unique_ptr<ShmRing> ring, ShmRing::Open(c.name, RingRole::kObserver));
  const RingStats s = ring->Stats();
  const bool stale = ring->Stale();
  nlohmann::json j = {
      {"name", c.name},
      {"path", ShmRing::SegmentPath(c.name)},
      {"mode", ModeName(ring->delivery_mode())},
      {"capacity_bytes", s.capacity_bytes},
      {"largest_message_bytes", s.largest_message_bytes},
      {"depth_messages", s.depth_messages},
      {"depth_bytes", s.depth_bytes},
      {"in_flight", s.in_flight},
      {"pushed", s.pushed},
      {"popped", s.popped},
      {"acked", s.acked},
      {"redelivered", s.redelivered},
      {"producers_open", s.producers_open},
      {"producers_closed", s.producers_closed},
      {"producers_died", s.producers_died},
      {"consumers", s.consumers},
      {"end_of_stream", s.end_of_stream},
      {"owner_pid", ring->owner_pid()},
      {"stale", stale},
  };
  if (c.json) {
    out << j.dump() << "\n";
    return absl::OkStatus();
  }
  for (const auto& [key, value] : j.items()) out << key << ": " << value.dump() << "\n";
  if (stale) {
    out << "note: the owner and every participant are gone; remove it with: bazel run //tools/ring -- remove "
        << c.name << "\n";
  }
  return absl::OkStatus();
}

absl::Status Drain(const RingCommand& c, std::ostream& out) {
  MOERL_ASSIGN_OR_RETURN(std::unique_ptr<ShmRing> ring, ShmRing::Open(c.name, RingRole::kConsumer));
  std::unique_ptr<RecordWriter> writer;
  if (!c.output.empty()) {
    MOERL_ASSIGN_OR_RETURN(writer, RecordWriter::Create(c.output));
  }
  uint64_t messages = 0, bytes = 0;
  std::string why = "empty";
  while (messages < c.max_messages) {
    absl::StatusOr<RingMessage> m = ring->TryPop();
    if (absl::IsUnavailable(m.status())) break;
    if (absl::IsOutOfRange(m.status())) {
      why = "end of stream";
      break;
    }
    if (!m.ok()) return Annotate(m.status(), absl::StrCat("draining ring ", c.name));
    if (writer) MOERL_RETURN_IF_ERROR(writer->Write(m->payload));
    MOERL_RETURN_IF_ERROR(ring->Ack(m->ticket));
    ++messages;
    bytes += m->payload.size();
  }
  if (messages == c.max_messages) why = "--max_messages reached";
  if (writer) MOERL_RETURN_IF_ERROR(writer->Close());
  out << "drained " << messages << " messages (" << bytes << " bytes) from " << c.name << ", stopped: " << why;
  if (writer) out << "; written to " << c.output;
  out << "\n";
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseDeliveryMode(const std::string& text, DeliveryMode* mode) {
  if (text == "plain") {
    *mode = DeliveryMode::kPlain;
  } else if (text == "ack" || text == "acknowledged") {
    *mode = DeliveryMode::kAcknowledged;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("--mode: expected plain or ack, got \"", text, "\""));
  }
  return absl::OkStatus();
}

absl::Status RunRingCommand(const RingCommand& command, std::ostream& out) {
  if (command.name.empty()) {
    return absl::InvalidArgumentError("usage: ring create|stat|drain|remove <experiment>.<trial>.<hop> [flags]");
  }
  if (command.verb == "create") return Create(command, out);
  if (command.verb == "stat") return Stat(command, out);
  if (command.verb == "drain") return Drain(command, out);
  if (command.verb == "remove") {
    MOERL_RETURN_IF_ERROR(ShmRing::Remove(command.name));
    out << "removed ring " << command.name << "\n";
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown command \"", command.verb, "\": expected create, stat, drain or remove"));
}

}  // namespace moerl
