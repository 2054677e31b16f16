#include "common/transport/shm_ring_sync.h"

#include <linux/futex.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace moerl {
namespace shm_ring_internal {

absl::Status InitRobustMutex(pthread_mutex_t* mutex) {
  pthread_mutexattr_t attr;
  int rc = pthread_mutexattr_init(&attr);
  if (rc == 0) rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  if (rc == 0) rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  if (rc == 0) rc = pthread_mutex_init(mutex, &attr);
  pthread_mutexattr_destroy(&attr);
  if (rc != 0) {
    return absl::InternalError(
        absl::StrCat("cannot initialise the ring's robust mutex: ", std::strerror(rc)));
  }
  return absl::OkStatus();
}

absl::Status LockRobustMutex(pthread_mutex_t* mutex, bool* owner_died) {
  *owner_died = false;
  // Critical sections are short: try a little before sleeping in the kernel.
  int rc = EBUSY;
  for (int i = 0; i < 64 && rc == EBUSY; ++i) {
    rc = pthread_mutex_trylock(mutex);
    if (rc == EBUSY) CpuRelax();
  }
  if (rc == EBUSY) rc = pthread_mutex_lock(mutex);
  if (rc == 0) return absl::OkStatus();
  if (rc == EOWNERDEAD) {
    *owner_died = true;
    pthread_mutex_consistent(mutex);
    return absl::OkStatus();
  }
  return absl::InternalError(absl::StrCat(
      "cannot lock the ring's mutex: ", std::strerror(rc),
      rc == ENOTRECOVERABLE ? " (the segment is unusable; remove and recreate the ring)" : ""));
}

void UnlockRobustMutex(pthread_mutex_t* mutex) { pthread_mutex_unlock(mutex); }

void FutexWait(std::atomic<uint32_t>* word, uint32_t expected, int64_t timeout_ns) {
  timespec timeout{};
  timeout.tv_sec = static_cast<time_t>(timeout_ns / 1000000000);
  timeout.tv_nsec = static_cast<long>(timeout_ns % 1000000000);
  // Not FUTEX_PRIVATE_FLAG: the word lives in memory shared between processes.
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT, expected, &timeout, nullptr,
          0);
}

void FutexWake(std::atomic<uint32_t>* word, int count) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, count, nullptr, nullptr, 0);
}

uint64_t ProcessStartTime(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%d/stat", static_cast<int>(pid));
  FILE* f = std::fopen(path, "re");
  if (f == nullptr) return 0;
  char buffer[1024];
  const size_t n = std::fread(buffer, 1, sizeof(buffer) - 1, f);
  std::fclose(f);
  buffer[n] = '\0';
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so
  // parse from the last ')'.
  const char* p = std::strrchr(buffer, ')');
  if (p == nullptr || p[1] != ' ') return 0;
  p += 2;
  const char state = *p;
  if (state == 'Z' || state == 'X' || state == 'x') return 0;
  // Fields after ')' start at field 3 (state); starttime is field 22.
  for (int field = 3; field < 22; ++field) {
    p = std::strchr(p, ' ');
    if (p == nullptr) return 0;
    ++p;
  }
  return std::strtoull(p, nullptr, 10);
}

bool ProcessAlive(pid_t pid, uint64_t start_time) {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
  const uint64_t now_start = ProcessStartTime(pid);
  if (now_start == 0) return false;
  return start_time == 0 || now_start == start_time;
}

uint64_t PidNamespaceId() {
  struct stat st {};
  if (::stat("/proc/self/ns/pid", &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_ino);
}

int64_t MonotonicNanos() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<int64_t>(now.tv_sec) * 1000000000 + now.tv_nsec;
}

}  // namespace shm_ring_internal
}  // namespace moerl
