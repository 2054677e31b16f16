// Reading and writing safetensors files (Hugging Face's weight format).
//
// Layout: u64 little-endian header length N, N bytes of JSON header, then the
// byte buffer. Each header entry is {"dtype", "shape", "data_offsets"} with
// offsets relative to the buffer; "__metadata__" is a string->string map.
// Every check the reference reader makes is made here (header size, JSON,
// duplicate names, dtype, offsets tiling the buffer exactly, file size), and
// each failure names the file, the tensor and the byte offset.
//
//   MOERL_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open("model.safetensors"));
//   const TensorInfo* info = file->Find("model.norm.weight");
//   absl::Span<const uint8_t> bytes = file->Bytes(*info);   // mmapped, unaligned
//
//   std::vector<TensorToWrite> out = {{"w", Dtype::kF32, {2, 3}, bytes_span}};
//   MOERL_RETURN_IF_ERROR(WriteSafetensors("/tmp/x.safetensors", out, {{"format", "pt"}}));
//
// Reads are memory-mapped; data is NOT assumed aligned (some HF files have
// odd header lengths): copy before reinterpreting. The writer pads the header
// with spaces to a multiple of 8 and orders tensors by alignment then name,
// as the reference writer does, and writes via a temporary file + rename.
//
// Threading: a SafetensorsFile is immutable after Open and safe to read from
// many threads; it owns its mapping, and spans it returns live as long as it.
#ifndef MOERL_COMMON_SAFETENSORS_SAFETENSORS_H_
#define MOERL_COMMON_SAFETENSORS_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace moerl {

enum class Dtype {
  kBool, kU8, kI8, kF8E5M2, kF8E4M3, kF8E8M0, kI16, kU16, kF16, kBF16,
  kI32, kU32, kF32, kF64, kI64, kU64, kC64,
};

// "F32" -> kF32. InvalidArgument naming the string for unknown dtypes
// (including the sub-byte F4/F6 types, which moerl does not load).
absl::StatusOr<Dtype> ParseDtype(absl::string_view name);
const char* DtypeName(Dtype dtype);
size_t DtypeSize(Dtype dtype);

struct TensorInfo {
  std::string name;
  Dtype dtype = Dtype::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // relative to the byte buffer
  uint64_t end = 0;    // exclusive
  int64_t NumElements() const;
};

// A parsed header: tensors in header order, metadata, buffer start offset.
struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
  uint64_t buffer_offset = 0;  // 8 + N
};

// Parses and validates the header of a whole file image `file_bytes`
// (the buffer must be present: offsets are checked against the file size).
// `where` prefixes error messages (usually the path). Never crashes.
absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(absl::Span<const uint8_t> file_bytes,
                                                         absl::string_view where);

class SafetensorsFile {
 public:
  // Maps the file read-only and validates its header.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  // The same for `name` relative to the open directory `dir_fd` (openat);
  // `path` is what path() and errors show.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> OpenAt(int dir_fd, const std::string& name,
                                                                 const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  // nullptr when absent.
  const TensorInfo* Find(absl::string_view name) const;
  // The tensor's bytes inside the mapping (bounds were checked at Open).
  absl::Span<const uint8_t> Bytes(const TensorInfo& info) const;

 private:
  SafetensorsFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  SafetensorsHeader header_;
  std::map<std::string, size_t, std::less<>> index_;
};

// Copies elements [start, start + length) along `dim` of tensor `info` (whole
// along every other dim) from `bytes` (the tensor's bytes, as Bytes() or
// CheckpointDir::Get give them) into `out`, row-major and tightly packed.
// Only the slice's bytes are read: a dim-0 slice is one contiguous range,
// a slice along a later dim one range per index of the dims before it (the
// strided rows of a matrix's column slice). InvalidArgument naming `where`
// (the file), the tensor and the buffer byte offsets for a slice outside
// the shape or a `bytes`/`out` of the wrong size. Returns the bytes copied.
absl::StatusOr<uint64_t> CopyTensorSlice(const TensorInfo& info, absl::Span<const uint8_t> bytes,
                                         absl::string_view where, int dim, int64_t start, int64_t length,
                                         absl::Span<uint8_t> out);

struct TensorToWrite {
  std::string name;
  Dtype dtype = Dtype::kF32;
  std::vector<int64_t> shape;
  absl::Span<const uint8_t> bytes;  // row-major, little-endian, tightly packed
};

// Writes one file. InvalidArgument for duplicate names, "__metadata__" as a
// tensor name, or a byte count that does not match dtype x shape.
absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                              const std::map<std::string, std::string>& metadata);

}  // namespace moerl

#endif  // MOERL_COMMON_SAFETENSORS_SAFETENSORS_H_
