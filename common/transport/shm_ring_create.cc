// ShmRing: names, and creating, opening (with the segment header checks)
// and removing segments. The protocol is in shm_ring.cc and shm_ring_fast.cc.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <new>
#include <utility>

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status.h"
#include "common/transport/shm_ring.h"
#include "common/transport/shm_ring_segment.h"
#include "common/transport/shm_ring_sync.h"

namespace moerl {
namespace bip = boost::interprocess;
using shm_ring_internal::kHeaderBytes;
using shm_ring_internal::SegmentHeader;

namespace {

std::string ShmObjectName(absl::string_view name) { return absl::StrCat("moerl.", name); }

std::string RemoveHint(absl::string_view name) {
  return absl::StrCat("remove it with: bazel run //tools/ring -- remove ", name);
}

}  // namespace

absl::Status ShmRing::ValidateName(absl::string_view name) {
  std::vector<absl::string_view> parts = absl::StrSplit(name, '.');
  const char* what = nullptr;
  if (parts.size() != 3) what = "it must have three dot-separated parts";
  for (absl::string_view part : parts) {
    if (what != nullptr) break;
    if (part.empty() || part.size() > 64) what = "each part must be 1 to 64 characters";
    for (char c : part) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '-';
      if (!ok) what = "parts may hold only letters, digits, '_' and '-'";
    }
  }
  if (what == nullptr) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("bad ring name \"", name, "\": ", what,
                                                 " (expected <experiment>.<trial>.<hop>)"));
}

absl::StatusOr<std::string> ShmRing::SegmentName(absl::string_view experiment,
                                                 absl::string_view trial, absl::string_view hop) {
  std::string name = absl::StrCat(experiment, ".", trial, ".", hop);
  MOERL_RETURN_IF_ERROR(ValidateName(name));
  return name;
}

std::string ShmRing::SegmentPath(absl::string_view name) {
  return absl::StrCat("/dev/shm/", ShmObjectName(name));
}

absl::Status ShmRing::Create(const std::string& name, const CreateOptions& options) {
  MOERL_RETURN_IF_ERROR(ValidateName(name));
  const uint64_t capacity = shm_ring_internal::AlignSlot(std::max<uint64_t>(options.capacity_bytes, 4096));
  if (capacity > (1ull << 40)) {
    return absl::InvalidArgumentError(absl::StrCat("ring capacity ", capacity, " is over 1 TiB"));
  }
  bip::shared_memory_object shm;
  for (int attempt = 0;; ++attempt) {
    try {
      bip::permissions perm(0600);
      shm = bip::shared_memory_object(bip::create_only, ShmObjectName(name).c_str(),
                                      bip::read_write, perm);
      break;
    } catch (const bip::interprocess_exception& e) {
      if (e.get_error_code() != bip::already_exists_error || attempt > 0) {
        return absl::InternalError(absl::StrCat("cannot create ring ", name, ": ", e.what()));
      }
    }
    // A segment of this name exists: in use, or left over by a crashed run.
    absl::StatusOr<std::unique_ptr<ShmRing>> existing = Open(name, RingRole::kObserver);
    const bool stale = existing.ok() && (*existing)->Stale();
    if (existing.ok() && !stale) {
      return absl::AlreadyExistsError(absl::StrCat("ring ", name, " exists and is in use (owner pid ",
                                                   (*existing)->owner_pid(), ")"));
    }
    const std::string why =
        existing.ok() ? absl::StrCat("its owner (pid ", (*existing)->owner_pid(),
                                     ") and every participant are gone")
                      : absl::StrCat("it cannot be opened: ", existing.status().message());
    if (!options.reclaim_stale) {
      return absl::FailedPreconditionError(absl::StrCat("ring ", name, " is left over from an earlier run (",
                                                        why, "); ", RemoveHint(name)));
    }
    existing = absl::UnknownError("released");
    MOERL_RETURN_IF_ERROR(Remove(name));
  }
  try {
    shm.truncate(static_cast<bip::offset_t>(kHeaderBytes + capacity));
    bip::mapped_region region(shm, bip::read_write);
    std::memset(region.get_address(), 0, kHeaderBytes);
    auto* h = new (region.get_address()) SegmentHeader();
    std::memcpy(h->magic, shm_ring_internal::kSegmentMagic, sizeof(h->magic));
    h->layout_version = shm_ring_internal::kLayoutVersion;
    h->header_bytes = kHeaderBytes;
    h->capacity_bytes = capacity;
    h->segment_bytes = kHeaderBytes + capacity;
    h->mode = static_cast<uint32_t>(options.mode);
    h->expected_producers = options.expected_producers;
    h->checksum_payloads = options.checksum_payloads ? 1 : 0;
    h->owner_pid = options.owner_pid > 0 ? options.owner_pid : ::getpid();
    h->owner_start_time = shm_ring_internal::ProcessStartTime(h->owner_pid);
    h->owner_pid_namespace = shm_ring_internal::PidNamespaceId();
    h->created_unix_seconds = static_cast<uint64_t>(::time(nullptr));
    h->journal.participant_index = shm_ring_internal::kNoOwner;
    h->journal.slot_position = shm_ring_internal::kNoSlot;
    MOERL_RETURN_IF_ERROR(shm_ring_internal::InitRobustMutex(&h->mutex));
    MOERL_RETURN_IF_ERROR(shm_ring_internal::InitRobustMutex(&h->producer_mutex));
    h->ready.store(shm_ring_internal::kReadyValue, std::memory_order_release);
  } catch (const bip::interprocess_exception& e) {
    bip::shared_memory_object::remove(ShmObjectName(name).c_str());
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot size ring ", name, " to ", kHeaderBytes + capacity, " bytes: ", e.what()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ShmRing>> ShmRing::Open(const std::string& name, RingRole role) {
  MOERL_RETURN_IF_ERROR(ValidateName(name));
  std::unique_ptr<bip::mapped_region> region;
  try {
    bip::shared_memory_object shm(bip::open_only, ShmObjectName(name).c_str(), bip::read_write);
    bip::offset_t size = 0;
    shm.get_size(size);
    if (static_cast<uint64_t>(size) < kHeaderBytes) {
      return absl::FailedPreconditionError(absl::StrCat(
          "ring ", name, " is ", size, " bytes, smaller than its header (", kHeaderBytes,
          "): not a moerl ring or not yet initialised; ", RemoveHint(name)));
    }
    // Participants touch the whole ring; fault it in once here instead of
    // page by page on the hot path.
    const bip::map_options_t options = role == RingRole::kObserver ? bip::default_map_options : MAP_POPULATE;
    region = std::make_unique<bip::mapped_region>(shm, bip::read_write, 0, 0, nullptr, options);
  } catch (const bip::interprocess_exception& e) {
    if (e.get_error_code() == bip::not_found_error) {
      return absl::NotFoundError(absl::StrCat("no ring named ", name, " (create it with: bazel run //tools/ring -- create ", name, ")"));
    }
    return absl::InternalError(absl::StrCat("cannot open ring ", name, ": ", e.what()));
  }
  const auto* h = static_cast<const SegmentHeader*>(region->get_address());
  // The creator sets `ready` last; give a concurrent Create a moment.
  for (int i = 0; i < 200 && h->ready.load(std::memory_order_acquire) != shm_ring_internal::kReadyValue; ++i) {
    ::usleep(5000);
  }
  const uint64_t size = region->get_size();
  std::string problem;
  if (std::memcmp(h->magic, shm_ring_internal::kSegmentMagic, sizeof(h->magic)) != 0) {
    problem = "bad magic (not a moerl ring)";
  } else if (h->ready.load(std::memory_order_acquire) != shm_ring_internal::kReadyValue) {
    problem = "never finished initialising (its creator died?)";
  } else if (h->layout_version != shm_ring_internal::kLayoutVersion) {
    problem = absl::StrCat("layout version ", h->layout_version, ", this build reads version ",
                           shm_ring_internal::kLayoutVersion);
  } else if (h->header_bytes != kHeaderBytes) {
    problem = absl::StrCat("header of ", h->header_bytes, " bytes, expected ", kHeaderBytes);
  } else if (h->capacity_bytes % shm_ring_internal::kSlotAlign != 0 ||
             h->segment_bytes != kHeaderBytes + h->capacity_bytes || h->segment_bytes != size) {
    problem = absl::StrCat("sizes disagree: capacity ", h->capacity_bytes, ", segment ",
                           h->segment_bytes, ", mapped ", size);
  } else if (h->mode > static_cast<uint32_t>(DeliveryMode::kAcknowledged)) {
    problem = absl::StrCat("unknown delivery mode ", h->mode);
  }
  if (!problem.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("ring ", name, ": ", problem, "; ", RemoveHint(name)));
  }
  std::unique_ptr<ShmRing> ring(new ShmRing(name, std::move(region), role));
  if (role != RingRole::kObserver) {
    MOERL_RETURN_IF_ERROR(ring->Lock());
    std::optional<uint32_t> index =
        ring->segment_->Register(role, ring->pid_, shm_ring_internal::ProcessStartTime(ring->pid_));
    if (!index) {
      ring->segment_->SweepDead(ring->pid_, /*holds_producer_mutex=*/false);
      index = ring->segment_->Register(role, ring->pid_,
                                       shm_ring_internal::ProcessStartTime(ring->pid_));
    }
    ring->Unlock();
    if (!index) {
      return absl::ResourceExhaustedError(absl::StrCat("ring ", name, " already has ",
                                                       shm_ring_internal::kMaxParticipants,
                                                       " live participants"));
    }
    ring->self_ = *index;
  }
  return ring;
}

absl::Status ShmRing::Remove(const std::string& name) {
  MOERL_RETURN_IF_ERROR(ValidateName(name));
  if (::access(SegmentPath(name).c_str(), F_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("no ring named ", name, " (", SegmentPath(name), ")"));
  }
  if (!bip::shared_memory_object::remove(ShmObjectName(name).c_str())) {
    return absl::InternalError(absl::StrCat("cannot remove ring ", name, " (", SegmentPath(name), ")"));
  }
  return absl::OkStatus();
}

}  // namespace moerl
