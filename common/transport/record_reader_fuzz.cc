// libFuzzer entry point for RecordReader, two ways:
//  1. Any bytes, in strict and in recovery mode, give records or a Status,
//     never a crash, and no record is returned past the input's end.
//  2. Any bytes, split into records and encoded by an independent encoder
//     here, then damaged as the input says (one byte flipped, or the file
//     cut short): an intact file reads back exactly; a damaged one fails
//     with the byte offset of the frame that holds the damage.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/transport/crc32c.h"
#include "common/transport/record_io.h"

namespace {

void ReadAnything(const uint8_t* data, size_t size, bool recover) {
  moerl::RecordReader::Options options;
  options.recover_truncated_tail = recover;
  auto reader = moerl::RecordReader::FromString(
      "fuzz.rec", std::string(reinterpret_cast<const char*>(data), size), options);
  if (!reader.ok()) return;
  std::string record;
  uint64_t total = 0;
  for (int i = 0; i <= static_cast<int>(size); ++i) {
    absl::StatusOr<bool> more = (*reader)->Next(&record);
    if (!more.ok() || !*more) return;
    total += record.size() + moerl::kRecordFrameBytes;
    if (total > size) std::abort();  // a record made of bytes that are not there
  }
  std::abort();  // more records than bytes: the reader failed to advance
}

void PutU32(std::string* out, uint32_t v) { out->append(reinterpret_cast<const char*>(&v), 4); }

// The layout of record_io.h, written out independently of RecordWriter.
std::string Encode(const std::vector<std::string>& records, std::vector<uint64_t>* frame_starts) {
  std::string out(moerl::kRecordFileMagic, 8);
  PutU32(&out, moerl::kRecordFileFormatVersion);
  PutU32(&out, moerl::Crc32c(out));
  frame_starts->push_back(0);
  for (const std::string& r : records) {
    frame_starts->push_back(out.size());
    const uint32_t length = static_cast<uint32_t>(r.size());
    PutU32(&out, length);
    PutU32(&out, moerl::Crc32cExtend(0, &length, 4));
    out += r;
    PutU32(&out, moerl::Crc32c(r));
  }
  frame_starts->push_back(out.size());
  const uint32_t end = moerl::kRecordEndMarkerLength;
  PutU32(&out, end);
  PutU32(&out, moerl::Crc32cExtend(0, &end, 4));
  const uint64_t count = records.size();
  out.append(reinterpret_cast<const char*>(&count), 8);
  PutU32(&out, moerl::Crc32cExtend(0, &count, 8));
  return out;
}

long OffsetIn(const absl::Status& status) {
  const std::string message(status.message());
  const std::string prefix = "fuzz.rec: byte ";
  if (message.rfind(prefix, 0) != 0) return -1;
  return std::strtol(message.c_str() + prefix.size(), nullptr, 10);
}

void EncodeDamageRead(const uint8_t* data, size_t size) {
  if (size < 4) return;
  const uint8_t kind = data[0] % 3;  // 0 intact, 1 flip, 2 cut
  const uint16_t where = static_cast<uint16_t>(data[1] | (data[2] << 8));
  const uint8_t mask = data[3] == 0 ? 1 : data[3];
  std::vector<std::string> records(1);
  for (size_t i = 4; i < size; ++i) {
    if (data[i] == '|') {
      records.emplace_back();
    } else {
      records.back() += static_cast<char>(data[i]);
    }
  }
  std::vector<uint64_t> starts;
  std::string file = Encode(records, &starts);
  uint64_t damage = where % file.size();
  if (kind == 1) file[damage] = static_cast<char>(file[damage] ^ mask);
  if (kind == 2) file.resize(damage);
  auto reader = moerl::RecordReader::FromString("fuzz.rec", file, {});
  absl::Status status = reader.status();
  std::vector<std::string> read;
  if (reader.ok()) {
    std::string record;
    while (true) {
      absl::StatusOr<bool> more = (*reader)->Next(&record);
      if (!more.ok()) {
        status = more.status();
        break;
      }
      if (!*more) break;
      read.push_back(record);
    }
  }
  if (kind == 0) {
    if (!status.ok() || read != records) std::abort();
    return;
  }
  if (status.ok()) std::abort();  // damage went unnoticed
  uint64_t frame = 0;
  for (uint64_t s : starts) {
    if (s <= damage) frame = s;
  }
  if (OffsetIn(status) != static_cast<long>(frame)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ReadAnything(data, size, /*recover=*/false);
  ReadAnything(data, size, /*recover=*/true);
  EncodeDamageRead(data, size);
  return 0;
}
