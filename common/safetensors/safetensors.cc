#include "common/safetensors/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

namespace moerl {
namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100000000;  // the reference reader's limit

struct DtypeEntry {
  Dtype dtype;
  const char* name;
  size_t size;
};

constexpr DtypeEntry kDtypes[] = {
    {Dtype::kBool, "BOOL", 1},    {Dtype::kU8, "U8", 1},         {Dtype::kI8, "I8", 1},
    {Dtype::kF8E5M2, "F8_E5M2", 1}, {Dtype::kF8E4M3, "F8_E4M3", 1}, {Dtype::kF8E8M0, "F8_E8M0", 1},
    {Dtype::kI16, "I16", 2},      {Dtype::kU16, "U16", 2},       {Dtype::kF16, "F16", 2},
    {Dtype::kBF16, "BF16", 2},    {Dtype::kI32, "I32", 4},       {Dtype::kU32, "U32", 4},
    {Dtype::kF32, "F32", 4},      {Dtype::kF64, "F64", 8},       {Dtype::kI64, "I64", 8},
    {Dtype::kU64, "U64", 8},      {Dtype::kC64, "C64", 8},
};

absl::Status Bad(absl::string_view where, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

// Multiplies with an overflow check; false on overflow.
bool MulOk(uint64_t a, uint64_t b, uint64_t* out) {
  if (a != 0 && b > UINT64_MAX / a) return false;
  *out = a * b;
  return true;
}

absl::StatusOr<TensorInfo> ParseEntry(const std::string& name, const json& entry,
                                      absl::string_view where) {
  const std::string at = absl::StrCat(where, ": tensor \"", name, "\"");
  if (!entry.is_object()) return Bad(at, "header entry is not a JSON object");
  TensorInfo info;
  info.name = name;
  auto dt = entry.find("dtype");
  if (dt == entry.end() || !dt->is_string()) return Bad(at, "missing string field \"dtype\"");
  auto parsed = ParseDtype(dt->get<std::string>());
  if (!parsed.ok()) return Annotate(parsed.status(), at);
  info.dtype = *parsed;
  auto shape = entry.find("shape");
  if (shape == entry.end() || !shape->is_array()) return Bad(at, "missing array field \"shape\"");
  uint64_t elements = 1;
  for (const json& d : *shape) {
    if (!d.is_number_unsigned()) return Bad(at, "shape entries must be non-negative integers");
    const uint64_t v = d.get<uint64_t>();
    if (v > static_cast<uint64_t>(INT64_MAX) || !MulOk(elements, v, &elements)) {
      return Bad(at, "shape overflows 64 bits");
    }
    info.shape.push_back(static_cast<int64_t>(v));
  }
  auto offsets = entry.find("data_offsets");
  if (offsets == entry.end() || !offsets->is_array() || offsets->size() != 2 ||
      !(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned()) {
    return Bad(at, "\"data_offsets\" must be [begin, end] of non-negative integers");
  }
  info.begin = (*offsets)[0].get<uint64_t>();
  info.end = (*offsets)[1].get<uint64_t>();
  if (info.end < info.begin) {
    return Bad(at, absl::StrCat("data_offsets end ", info.end, " < begin ", info.begin));
  }
  uint64_t bytes = 0;
  if (!MulOk(elements, DtypeSize(info.dtype), &bytes) || bytes != info.end - info.begin) {
    return Bad(at, absl::StrCat("data_offsets span ", info.end - info.begin, " bytes but dtype ",
                                DtypeName(info.dtype), " x shape needs ", bytes));
  }
  return info;
}

}  // namespace

absl::StatusOr<Dtype> ParseDtype(absl::string_view name) {
  for (const DtypeEntry& e : kDtypes) {
    if (name == e.name) return e.dtype;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported safetensors dtype \"", name, "\" (expected one of BOOL, U8, I8, ",
                   "F8_E5M2, F8_E4M3, F8_E8M0, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64, C64)"));
}

const char* DtypeName(Dtype dtype) {
  for (const DtypeEntry& e : kDtypes) {
    if (e.dtype == dtype) return e.name;
  }
  return "?";
}

size_t DtypeSize(Dtype dtype) {
  for (const DtypeEntry& e : kDtypes) {
    if (e.dtype == dtype) return e.size;
  }
  return 0;
}

int64_t TensorInfo::NumElements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(absl::Span<const uint8_t> file_bytes,
                                                         absl::string_view where) {
  if (file_bytes.size() < 8) {
    return Bad(where, absl::StrCat("file is ", file_bytes.size(),
                                   " bytes, shorter than the 8-byte header length"));
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | file_bytes[i];
  if (n > kMaxHeaderBytes) {
    return Bad(where, absl::StrCat("header length ", n, " at offset 0 exceeds the limit of ",
                                   kMaxHeaderBytes));
  }
  if (n > file_bytes.size() - 8) {
    return Bad(where, absl::StrCat("header length ", n, " runs past the end of the ",
                                   file_bytes.size(), "-byte file"));
  }
  const char* text = reinterpret_cast<const char*>(file_bytes.data() + 8);
  if (n == 0 || text[0] != '{') return Bad(where, "header at offset 8 does not start with '{'");

  // nlohmann keeps the last of duplicate keys; count top-level keys to catch them.
  size_t top_level_keys = 0;
  json::parser_callback_t count_keys = [&top_level_keys](int depth, json::parse_event_t event,
                                                         json&) {
    if (event == json::parse_event_t::key && depth == 1) ++top_level_keys;
    return true;
  };
  json header = json::parse(text, text + n, count_keys, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) {
    return Bad(where, absl::StrCat("header (bytes 8..", 8 + n, ") is not a valid JSON object"));
  }
  if (top_level_keys != header.size()) return Bad(where, "header has duplicate tensor names");

  SafetensorsHeader out;
  out.buffer_offset = 8 + n;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) return Bad(where, "__metadata__ is not an object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) {
          return Bad(where, absl::StrCat("__metadata__ value for \"", m.key(), "\" is not a string"));
        }
        out.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    MOERL_ASSIGN_OR_RETURN(TensorInfo info, ParseEntry(it.key(), *it, where));
    out.tensors.push_back(std::move(info));
  }
  // The tensors must tile the buffer exactly, in offset order.
  std::vector<const TensorInfo*> sorted;
  for (const TensorInfo& t : out.tensors) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t expected = 0;
  for (const TensorInfo* t : sorted) {
    if (t->begin != expected) {
      return Bad(where, absl::StrCat("tensor \"", t->name, "\" starts at buffer offset ", t->begin,
                                     " but the previous tensor ends at ", expected,
                                     " (gap or overlap)"));
    }
    expected = t->end;
  }
  const uint64_t buffer_bytes = file_bytes.size() - out.buffer_offset;
  if (expected != buffer_bytes) {
    return Bad(where, absl::StrCat("tensors cover ", expected, " bytes but the data buffer at offset ",
                                   out.buffer_offset, " holds ", buffer_bytes));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  return OpenAt(AT_FDCWD, path, path);
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::OpenAt(int dir_fd, const std::string& name,
                                                                         const std::string& path) {
  const int fd = ::openat(dir_fd, name.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::InternalError(absl::StrCat("cannot stat ", path, ": ", std::strerror(err)));
  }
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->size_ = static_cast<size_t>(st.st_size);
  if (file->size_ > 0) {
    void* p = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      return absl::InternalError(absl::StrCat("cannot mmap ", path, ": ", std::strerror(err)));
    }
    file->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  MOERL_ASSIGN_OR_RETURN(file->header_,
                         ParseSafetensorsHeader({file->data_, file->size_}, path));
  for (size_t i = 0; i < file->header_.tensors.size(); ++i) {
    file->index_[file->header_.tensors[i].name] = i;
  }
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

const TensorInfo* SafetensorsFile::Find(absl::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

absl::Span<const uint8_t> SafetensorsFile::Bytes(const TensorInfo& info) const {
  return {data_ + header_.buffer_offset + info.begin, info.end - info.begin};
}

absl::StatusOr<uint64_t> CopyTensorSlice(const TensorInfo& info, absl::Span<const uint8_t> bytes,
                                         absl::string_view where, int dim, int64_t start, int64_t length,
                                         absl::Span<uint8_t> out) {
  const std::string at = absl::StrCat(where, ": tensor \"", info.name, "\" (buffer bytes ", info.begin, "..",
                                      info.end, ")");
  const int rank = static_cast<int>(info.shape.size());
  if (dim < 0 || dim >= rank) return Bad(at, absl::StrCat("slice dim ", dim, " is outside its ", rank, " dims"));
  const int64_t full = info.shape[dim];
  if (start < 0 || length < 0 || start > full || length > full - start) {
    return Bad(at, absl::StrCat("slice [", start, ", ", start + length, ") along dim ", dim,
                                " is outside its size ", full));
  }
  if (bytes.size() != info.end - info.begin) {
    return Bad(at, absl::StrCat("holds ", bytes.size(), " bytes, its header entry ", info.end - info.begin));
  }
  uint64_t outer = 1, inner = DtypeSize(info.dtype);
  for (int d = 0; d < dim; ++d) outer *= static_cast<uint64_t>(info.shape[d]);
  for (int d = dim + 1; d < rank; ++d) inner *= static_cast<uint64_t>(info.shape[d]);
  const uint64_t piece = static_cast<uint64_t>(length) * inner;  // bytes per index of the outer dims
  if (out.size() != outer * piece) {
    return Bad(at, absl::StrCat("the slice is ", outer * piece, " bytes but the destination holds ", out.size()));
  }
  for (uint64_t o = 0; o < outer; ++o) {
    const uint64_t from = (o * static_cast<uint64_t>(full) + static_cast<uint64_t>(start)) * inner;
    if (piece > 0) std::memcpy(out.data() + o * piece, bytes.data() + from, piece);
  }
  return outer * piece;
}

absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  std::vector<const TensorToWrite*> order;
  for (const TensorToWrite& t : tensors) {
    if (t.name == "__metadata__") return Bad(path, "\"__metadata__\" is not a valid tensor name");
    uint64_t elements = 1;
    for (int64_t d : t.shape) {
      if (d < 0) return Bad(path, absl::StrCat("tensor \"", t.name, "\" has a negative dimension"));
      elements *= static_cast<uint64_t>(d);
    }
    if (elements * DtypeSize(t.dtype) != t.bytes.size()) {
      return Bad(path, absl::StrCat("tensor \"", t.name, "\" has ", t.bytes.size(),
                                    " bytes but dtype x shape needs ", elements * DtypeSize(t.dtype)));
    }
    order.push_back(&t);
  }
  // Largest alignment first, then by name: every tensor is naturally aligned.
  std::sort(order.begin(), order.end(), [](const TensorToWrite* a, const TensorToWrite* b) {
    const size_t sa = DtypeSize(a->dtype), sb = DtypeSize(b->dtype);
    return sa != sb ? sa > sb : a->name < b->name;
  });
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const TensorToWrite* t : order) {
    if (header.contains(t->name)) return Bad(path, absl::StrCat("duplicate tensor name \"", t->name, "\""));
    header[t->name] = {{"dtype", DtypeName(t->dtype)},
                       {"shape", t->shape},
                       {"data_offsets", {offset, offset + t->bytes.size()}}};
    offset += t->bytes.size();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) {
    return absl::PermissionDeniedError(absl::StrCat("cannot create ", tmp, ": ", std::strerror(errno)));
  }
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>((uint64_t{text.size()} >> (8 * i)) & 0xff);
  bool ok = std::fwrite(len, 1, 8, f) == 8 && std::fwrite(text.data(), 1, text.size(), f) == text.size();
  for (const TensorToWrite* t : order) {
    if (!ok) break;
    ok = t->bytes.empty() || std::fwrite(t->bytes.data(), 1, t->bytes.size(), f) == t->bytes.size();
  }
  ok = (std::fflush(f) == 0) && ok;
  ok = (::fsync(::fileno(f)) == 0) && ok;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return absl::InternalError(absl::StrCat("writing ", path, " failed: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace moerl
