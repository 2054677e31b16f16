#include "tools/inspect/inspect.h"

#include <cstdio>
#include <memory>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/proto/checkpoint.pb.h"
#include "common/proto/prompt.pb.h"
#include "common/proto/stats.pb.h"
#include "common/proto/trajectory.pb.h"
#include "common/status.h"
#include "common/transport/record_io.h"
#include "common/transport/shm_ring.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"

namespace moerl {
namespace {

// Referencing each generated type keeps its descriptor linked in, so the
// generated pool can find it by name.
const google::protobuf::Message* FindPrototype(const std::string& type) {
  const google::protobuf::Message* known[] = {
      &proto::Prompt::default_instance(),     &proto::Trajectory::default_instance(),
      &proto::TrajectoryBatch::default_instance(), &proto::StepStats::default_instance(),
      &proto::CheckpointManifest::default_instance(),
  };
  for (const google::protobuf::Message* m : known) {
    if (m->GetDescriptor()->full_name() == type) return m;
  }
  const google::protobuf::Descriptor* d =
      google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(type);
  if (d == nullptr) return nullptr;
  return google::protobuf::MessageFactory::generated_factory()->GetPrototype(d);
}

std::string HexPreview(const std::string& bytes) {
  std::string hex;
  const size_t n = bytes.size() < 32 ? bytes.size() : 32;
  for (size_t i = 0; i < n; ++i) {
    char b[4];
    std::snprintf(b, sizeof(b), "%02x", static_cast<unsigned char>(bytes[i]));
    hex += b;
  }
  if (n < bytes.size()) hex += "...";
  return hex;
}

class Printer {
 public:
  Printer(const InspectCommand& c, const google::protobuf::Message* prototype, std::ostream& out)
      : c_(c), prototype_(prototype), out_(out) {}

  absl::Status Print(uint64_t index, const std::string& where, const std::string& payload) {
    if (prototype_ == nullptr) {
      if (c_.format == "json") {
        out_ << "{\"index\":" << index << ",\"where\":\"" << where << "\",\"bytes\":" << payload.size()
             << ",\"hex\":\"" << HexPreview(payload) << "\"}\n";
      } else {
        out_ << "# " << index << " (" << where << "): " << payload.size() << " bytes: " << HexPreview(payload)
             << "\n";
      }
      return absl::OkStatus();
    }
    std::unique_ptr<google::protobuf::Message> m(prototype_->New());
    if (!m->ParseFromString(payload)) {
      return absl::DataLossError(absl::StrCat(c_.source, ": ", where, ": does not parse as ", c_.type));
    }
    if (c_.format == "json") {
      std::string json;
      google::protobuf::util::JsonPrintOptions options;
      options.preserve_proto_field_names = true;
      const auto status = google::protobuf::util::MessageToJsonString(*m, &json, options);
      if (!status.ok()) return absl::InternalError(absl::StrCat("cannot print JSON: ", status.ToString()));
      out_ << json << "\n";
    } else {
      std::string text;
      google::protobuf::TextFormat::PrintToString(*m, &text);
      out_ << "# " << index << " (" << where << ")\n" << text;
    }
    return absl::OkStatus();
  }

 private:
  const InspectCommand& c_;
  const google::protobuf::Message* prototype_;
  std::ostream& out_;
};

absl::Status InspectRing(const InspectCommand& c, Printer& printer) {
  const std::string name = c.source.substr(5);
  MOERL_ASSIGN_OR_RETURN(std::unique_ptr<ShmRing> ring, ShmRing::Open(name, RingRole::kObserver));
  MOERL_ASSIGN_OR_RETURN(const std::vector<RingMessage> messages,
                         ring->Peek(c.limit == UINT64_MAX ? SIZE_MAX : c.limit));
  for (size_t i = 0; i < messages.size(); ++i) {
    MOERL_RETURN_IF_ERROR(printer.Print(
        i, absl::StrCat("ticket ", messages[i].ticket, ", delivery ", messages[i].delivery_count),
        messages[i].payload));
  }
  return absl::OkStatus();
}

absl::Status InspectFile(const InspectCommand& c, Printer& printer, std::ostream& out) {
  MOERL_ASSIGN_OR_RETURN(std::unique_ptr<RecordReader> reader,
                         RecordReader::Open(c.source, RecordReader::Options{.recover_truncated_tail = c.recover}));
  std::string record;
  for (uint64_t i = 0; i < c.limit; ++i) {
    MOERL_ASSIGN_OR_RETURN(bool more, reader->Next(&record));
    if (!more) break;
    MOERL_RETURN_IF_ERROR(printer.Print(i, absl::StrCat("byte ", reader->record_offset()), record));
  }
  if (!reader->dropped_tail().ok()) {
    out << "# recovered " << reader->records_read() << " records; dropped the rest: "
        << reader->dropped_tail().message() << "\n";
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RunInspect(const InspectCommand& c, std::ostream& out) {
  if (c.source.empty()) {
    return absl::InvalidArgumentError("usage: inspect <file.rec | ring:<experiment>.<trial>.<hop>> [--type=...]");
  }
  if (c.format != "text" && c.format != "json") {
    return absl::InvalidArgumentError(absl::StrCat("--format: expected text or json, got \"", c.format, "\""));
  }
  const google::protobuf::Message* prototype = nullptr;
  if (!c.type.empty()) {
    prototype = FindPrototype(c.type);
    if (prototype == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--type: unknown message type \"", c.type,
          "\" (known: moerl.proto.Prompt, Trajectory, TrajectoryBatch, StepStats, CheckpointManifest)"));
    }
  }
  Printer printer(c, prototype, out);
  if (absl::StartsWith(c.source, "ring:")) return InspectRing(c, printer);
  return InspectFile(c, printer, out);
}

}  // namespace moerl
