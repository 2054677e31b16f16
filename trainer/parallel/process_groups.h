// The communication layer under ParallelState: where this process sits in the
// job (RankEnvironment, from torchrun's or Slurm's variables), the key-value
// store all ranks meet at (Rendezvous: a c10d TCPStore, or an in-memory
// HashStore for ranks that are threads of one test), and ProcessGroup, one
// group of ranks with the few collectives the trainer uses.
//
//   MOERL_ASSIGN_OR_RETURN(RankEnvironment env, ReadRankEnvironment(ProcessEnvironment(), 29500));
//   MOERL_ASSIGN_OR_RETURN(auto rendezvous, Rendezvous::ConnectTcp(env, options));
//   MOERL_ASSIGN_OR_RETURN(auto group, ProcessGroup::Create({0, 1}, env.rank, "ep", *rendezvous, options));
//   group->AllReduceSum(grad);                            // in place, every member
//   at::Tensor rows = group->AllToAll(x_nd, send_rows, recv_rows);
//
// c10d stays out of this header (its headers are heavy): the communicator is
// an opaque member built in process_groups.cc. A group of one rank has no
// communicator and its collectives are local copies, so a single-process run
// links c10d but never opens a socket.
//
// Communication volume: every call adds the bytes this rank sends to the
// group's counters by collective (CommOp), always on (an atomic add per
// call). The count is what a bandwidth-optimal algorithm sends, not what
// Gloo's wire carries: all-reduce 2(n-1)/n of the tensor (ring), an
// all-to-all the rows for the other members, all-gather and reduce-scatter
// (n-1)/n of the gathered size, broadcast the tensor on the root, send the
// tensor; recv counts the bytes received (not sent). ParallelState::
// CommBytes() sums them per group kind; a group of one counts nothing.
//
// Errors: building a group or a store returns a Status. Collectives are
// called inside forward and backward (autograd cannot carry a Status), so
// they throw CollectiveError, whose message names the collective, the group
// and, when the heartbeats tell, the rank that stopped answering; the
// trainer's top level turns it into a Status. Every member must call the
// same collectives in the same order.
//
// Threading: a ProcessGroup may be used from one thread at a time (c10d's
// rule for one communicator). Distinct groups may be used from distinct
// threads. Rendezvous is thread-safe.
#ifndef MOERL_TRAINER_PARALLEL_PROCESS_GROUPS_H_
#define MOERL_TRAINER_PARALLEL_PROCESS_GROUPS_H_

#include <ATen/core/Tensor.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace moerl {

// Where this process sits in the job.
struct RankEnvironment {
  std::string launcher = "none";  // "torchrun", "slurm" or "none" (one process)
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr;  // host of the TCPStore; empty for world 1
  int master_port = 0;
  // torchrun's agent already serves the store at master_addr:master_port
  // (TORCHELASTIC_USE_AGENT_STORE=True); rank 0 then joins it as a client.
  bool agent_hosts_store = false;
  int restart_count = 0;  // TORCHELASTIC_RESTART_COUNT: keys of a restart never mix with the last try's
};

// Looks a variable up; nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
// getenv.
EnvLookup ProcessEnvironment();

// torchrun's RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT when RANK is set; else Slurm's SLURM_PROCID, SLURM_NTASKS,
// SLURM_LOCALID, SLURM_NTASKS_PER_NODE (or SLURM_TASKS_PER_NODE), the first
// host of SLURM_JOB_NODELIST and MASTER_PORT or `slurm_port`; else one
// process. InvalidArgument names the variable and its value when one is
// malformed or inconsistent (rank outside the world, a missing partner).
absl::StatusOr<RankEnvironment> ReadRankEnvironment(const EnvLookup& env, int slurm_port);

// First host of a Slurm node list: "gpu[003-005,9],cpu1" -> "gpu003".
absl::StatusOr<std::string> FirstSlurmHost(absl::string_view nodelist);

struct CommOptions {
  // Collective and rendezvous timeout (Gloo's; NCCL's watchdog uses it too).
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
  // Address Gloo binds its sockets to: empty chooses 127.0.0.1 when the whole
  // job is on this host, else this host's name (GLOO_SOCKET_IFNAME, when set,
  // selects an interface instead).
  std::string gloo_hostname;
  // Device tensors go over NCCL (only in --config=cuda builds; elsewhere
  // building a group with this set is FailedPrecondition).
  bool use_nccl = false;
  // Heartbeat period for naming dead ranks after a failed collective; 0 off.
  std::chrono::milliseconds heartbeat_interval{std::chrono::seconds(1)};
};

// Thrown by a failed collective.
class CollectiveError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The store every rank reaches, plus this rank's heartbeat.
class Rendezvous {
 public:
  struct Impl;

  // Connects to (rank 0 without a torchrun agent: serves) the TCPStore at
  // env.master_addr:env.master_port; waits up to options.timeout for every
  // rank. Unavailable names the address when it cannot be reached.
  static absl::StatusOr<std::shared_ptr<Rendezvous>> ConnectTcp(const RankEnvironment& env,
                                                                 const CommOptions& options);
  // An in-memory store shared by ranks that are threads of this process.
  static std::shared_ptr<Rendezvous> InProcess();

  // Starts this rank's heartbeat (idempotent per rank; stops with the object).
  void StartHeartbeat(int rank, std::chrono::milliseconds interval);
  // Ranks of `ranks` whose heartbeat did not advance over ~3 periods; empty
  // when all beat or heartbeats are off. Blocks for those periods.
  std::vector<int> SilentRanks(const std::vector<int>& ranks) const;

  Impl& impl() const { return *impl_; }
  explicit Rendezvous(std::shared_ptr<Impl> impl);
  ~Rendezvous();

 private:
  std::shared_ptr<Impl> impl_;
};

// The collectives counted, in CommBytes' order.
enum class CommOp { kAllReduce, kAllToAll, kAllGather, kReduceScatter, kBroadcast, kSend, kRecv };
inline constexpr int kNumCommOps = 7;
// "all_reduce", "all_to_all", "all_gather", "reduce_scatter", "broadcast", "send", "recv".
const char* CommOpName(CommOp op);

// Bytes per CommOp (index static_cast<int>(op)).
struct CommCounts {
  int64_t bytes[kNumCommOps] = {};
  int64_t calls[kNumCommOps] = {};
  int64_t& operator[](CommOp op) { return bytes[static_cast<int>(op)]; }
  int64_t operator[](CommOp op) const { return bytes[static_cast<int>(op)]; }
  // Bytes sent (recv excluded).
  int64_t sent() const;
  CommCounts& operator+=(const CommCounts& o);
  CommCounts operator-(const CommCounts& o) const;
};

class ProcessGroup {
 public:
  struct Communicator;

  // `ranks`: the group's global ranks, ascending; `global_rank` must be one
  // of them. Every member calls Create for the group; groups must be created
  // in the same order on every rank (ParallelState does). `kind` ("ep",
  // "dp-cp", ...) is for messages and the store prefix.
  static absl::StatusOr<std::shared_ptr<ProcessGroup>> Create(std::vector<int> ranks, int global_rank,
                                                               std::string kind,
                                                               std::shared_ptr<Rendezvous> rendezvous,
                                                               const CommOptions& options);

  const std::vector<int>& ranks() const { return ranks_; }
  int rank() const { return rank_; }  // index of this process in ranks()
  int size() const { return static_cast<int>(ranks_.size()); }
  // "ep [0,1]".
  std::string name() const;
  // The same members and communicator under another kind's name (Megatron's
  // kinds often coincide, e.g. dp and dp-cp when cp is 1).
  std::shared_ptr<ProcessGroup> WithKind(std::string kind) const;

  // Sum over the members, in place; `tensor` must be contiguous.
  void AllReduceSum(at::Tensor& tensor) const;
  // Rows 0..send_rows[0] of `input_nd` go to member 0, the next send_rows[1]
  // to member 1, ...; returns the rows received, member 0's first.
  // recv_rows[j] must equal what member j sends here.
  at::Tensor AllToAll(const at::Tensor& input_nd, const std::vector<int64_t>& send_rows,
                      const std::vector<int64_t>& recv_rows) const;
  // Equal-size all-to-all: row block j of `input` (size()*n rows) to member j.
  // `count_as`: the collective it implements (an all-gather sends every
  // member the same block; a reduce-scatter sums what it receives), for the
  // counters.
  at::Tensor AllToAllEqual(const at::Tensor& input, CommOp count_as = CommOp::kAllToAll) const;
  void Broadcast(at::Tensor& tensor, int root) const;
  void Barrier() const;

  // Point-to-point (pipeline stages). Send starts sending `tensor`
  // (contiguous; kept alive by the handle) to member `dst` and returns at
  // once; Wait() blocks until it is out. Recv blocks until `tensor`
  // (contiguous, preallocated with the sender's shape and dtype) holds what
  // member `src` sent with the same tag. Messages of one (sender, receiver,
  // tag) arrive in the order sent. Both throw CollectiveError.
  class PendingSend {
   public:
    PendingSend() = default;
    explicit PendingSend(std::function<void()> wait) : wait_(std::move(wait)) {}
    void Wait() {
      if (wait_) wait_();
      wait_ = nullptr;
    }

   private:
    std::function<void()> wait_;
  };
  PendingSend Send(const at::Tensor& tensor, int dst, int tag) const;
  void Recv(at::Tensor& tensor, int src, int tag) const;

  // What this object's calls sent so far (see the file's header). Groups
  // made by WithKind count on their own.
  CommCounts comm_counts() const;

  ProcessGroup(std::vector<int> ranks, int rank, std::string kind, std::shared_ptr<Rendezvous> rendezvous,
               std::shared_ptr<Communicator> communicator);
  ~ProcessGroup();

 private:
  [[noreturn]] void Fail(absl::string_view op, const std::exception& e) const;
  void Count(CommOp op, int64_t bytes) const;

  std::vector<int> ranks_;
  int rank_;
  std::string kind_;
  std::shared_ptr<Rendezvous> rendezvous_;
  std::shared_ptr<Communicator> communicator_;  // null for a group of one
  mutable std::atomic<int64_t> bytes_[kNumCommOps] = {};
  mutable std::atomic<int64_t> calls_[kNumCommOps] = {};
};

}  // namespace moerl

#endif  // MOERL_TRAINER_PARALLEL_PROCESS_GROUPS_H_
