// Process-shared waiting and liveness for ShmRing (internal).
//
// - A robust, process-shared pthread mutex: a process killed while holding
//   it does not block the others; the next locker is told (owner_died) and
//   repairs the shared state.
// - Futex waits on a 32-bit sequence word in shared memory, with timeouts:
//   no spinning, and nothing a killed waiter can leave half-updated (glibc's
//   process-shared condition variables are not safe against a waiter that
//   dies inside pthread_cond_wait, so we do not use them).
// - Whether a process is alive: kill(pid, 0) plus its start time from
//   /proc/<pid>/stat (pid reuse) and its state (a zombie is dead).
//
// Thread-safe; no state of its own.
#ifndef MOERL_COMMON_TRANSPORT_SHM_RING_SYNC_H_
#define MOERL_COMMON_TRANSPORT_SHM_RING_SYNC_H_

#include <pthread.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>

#include "absl/status/status.h"

namespace moerl {
namespace shm_ring_internal {

// Initialises `mutex` in place as process-shared and robust.
absl::Status InitRobustMutex(pthread_mutex_t* mutex);

// Locks `mutex`. *owner_died is set when the previous owner died holding it;
// the mutex has then been marked consistent again and the caller owns it and
// must repair what the dead owner may have left half-done.
absl::Status LockRobustMutex(pthread_mutex_t* mutex, bool* owner_died);
void UnlockRobustMutex(pthread_mutex_t* mutex);

// Sleeps while *word == expected, at most timeout_ns (> 0). Returns when
// woken, when the word changed, on a signal, or on timeout.
void FutexWait(std::atomic<uint32_t>* word, uint32_t expected, int64_t timeout_ns);
// Wakes up to `count` waiters of `word` (any process).
void FutexWake(std::atomic<uint32_t>* word, int count);

// Start time of `pid` in clock ticks since boot (/proc/<pid>/stat field 22),
// or 0 if the process does not exist or is a zombie.
uint64_t ProcessStartTime(pid_t pid);
// True if `pid` runs and started at `start_time` (0: any start time).
bool ProcessAlive(pid_t pid, uint64_t start_time);

int64_t MonotonicNanos();

// Identifies this process's PID namespace (the inode of /proc/self/ns/pid),
// or 0 if unknown. A pid means something only inside its namespace: a ring
// shared across namespaces (a sandboxed test and a tool outside it) must not
// judge the liveness of participants from the other one.
uint64_t PidNamespaceId();

// A full (StoreLoad) fence. On x86-64 a locked add to the stack, as the
// Linux kernel's smp_mb() does: the same ordering as `mfence` for ordinary
// (write-back) memory, and much cheaper on the development VM (AMD EPYC, a
// store then the fence in a loop: 3 ns against 21 ns for `mfence`).
inline void FullFence() {
#if defined(__x86_64__)
  asm volatile("lock; addl $0, -4(%%rsp)" ::: "memory", "cc");
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

// A spin-wait hint to the CPU (x86 `pause`).
inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace shm_ring_internal
}  // namespace moerl

#endif  // MOERL_COMMON_TRANSPORT_SHM_RING_SYNC_H_
