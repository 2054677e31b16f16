#include "trainer/parallel/process_groups.h"

#include <ATen/ops/empty.h>
#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <numeric>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "trainer/parallel/c10d_backends.h"

namespace moerl {
namespace {

std::string ErrorText(const std::exception& e) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) return c10_error->what_without_backtrace();
  return e.what();
}

absl::StatusOr<int> IntVariable(const EnvLookup& env, const std::string& name, bool required, int fallback) {
  std::optional<std::string> text = env(name);
  if (!text.has_value() || text->empty()) {
    if (required) return absl::InvalidArgumentError(absl::StrCat("environment variable ", name, " is not set"));
    return fallback;
  }
  int value = 0;
  if (!absl::SimpleAtoi(*text, &value) || value < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("environment variable ", name, "=\"", *text, "\" is not a non-negative integer"));
  }
  return value;
}

// Slurm's per-node task count: "8", "8(x2),4" -> the first node's.
int FirstTaskCount(const std::string& text) {
  int value = 0;
  size_t end = 0;
  while (end < text.size() && text[end] >= '0' && text[end] <= '9') ++end;
  if (!absl::SimpleAtoi(text.substr(0, end), &value)) return 0;
  return value;
}

absl::Status CheckRanks(const RankEnvironment& e, const std::string& source) {
  if (e.world_size < 1 || e.rank >= e.world_size) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": rank ", e.rank, " is not in a world of ", e.world_size));
  }
  if (e.local_world_size < 1 || e.local_rank >= e.local_world_size || e.local_world_size > e.world_size) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": local rank ", e.local_rank, " of local world ",
                                                   e.local_world_size, " does not fit a world of ", e.world_size));
  }
  if (e.world_size > 1 && (e.master_addr.empty() || e.master_port <= 0 || e.master_port > 65535)) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": a world of ", e.world_size,
                                                   " needs the store's address and port, got \"", e.master_addr,
                                                   "\":", e.master_port));
  }
  return absl::OkStatus();
}

}  // namespace

EnvLookup ProcessEnvironment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

absl::StatusOr<std::string> FirstSlurmHost(absl::string_view nodelist) {
  // Up to the first comma outside brackets.
  size_t end = 0;
  int depth = 0;
  for (; end < nodelist.size(); ++end) {
    if (nodelist[end] == '[') ++depth;
    if (nodelist[end] == ']') --depth;
    if (nodelist[end] == ',' && depth == 0) break;
  }
  absl::string_view first = nodelist.substr(0, end);
  const size_t open = first.find('[');
  if (open == absl::string_view::npos) {
    if (first.empty()) return absl::InvalidArgumentError("SLURM_JOB_NODELIST is empty");
    return std::string(first);
  }
  const size_t close = first.find(']', open);
  if (close == absl::string_view::npos || open == 0) {
    return absl::InvalidArgumentError(absl::StrCat("SLURM_JOB_NODELIST \"", nodelist, "\" is not a host list"));
  }
  // "003-005,9" -> "003" (zero padding kept).
  absl::string_view range = first.substr(open + 1, close - open - 1);
  const size_t stop = range.find_first_of("-,");
  absl::string_view number = range.substr(0, stop);
  if (number.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("SLURM_JOB_NODELIST \"", nodelist, "\" has an empty range"));
  }
  return absl::StrCat(first.substr(0, open), number, first.substr(close + 1));
}

absl::StatusOr<RankEnvironment> ReadRankEnvironment(const EnvLookup& env, int slurm_port) {
  RankEnvironment e;
  if (env("RANK").has_value()) {
    e.launcher = "torchrun";
    const std::string source = "torchrun environment";
    auto rank = IntVariable(env, "RANK", true, 0);
    auto world = IntVariable(env, "WORLD_SIZE", true, 1);
    auto local_rank = IntVariable(env, "LOCAL_RANK", false, 0);
    auto port = IntVariable(env, "MASTER_PORT", false, 0);
    auto restarts = IntVariable(env, "TORCHELASTIC_RESTART_COUNT", false, 0);
    for (const auto* v : {&rank, &world, &local_rank, &port, &restarts}) {
      if (!v->ok()) return v->status();
    }
    e.rank = *rank;
    e.world_size = *world;
    e.local_rank = *local_rank;
    auto local_world = IntVariable(env, "LOCAL_WORLD_SIZE", false, e.world_size);
    if (!local_world.ok()) return local_world.status();
    e.local_world_size = *local_world;
    e.master_addr = env("MASTER_ADDR").value_or("");
    e.master_port = *port;
    e.agent_hosts_store = env("TORCHELASTIC_USE_AGENT_STORE").value_or("") == "True";
    e.restart_count = *restarts;
    if (auto s = CheckRanks(e, source); !s.ok()) return s;
    return e;
  }
  if (env("SLURM_PROCID").has_value()) {
    e.launcher = "slurm";
    const std::string source = "Slurm environment";
    auto rank = IntVariable(env, "SLURM_PROCID", true, 0);
    auto world = IntVariable(env, "SLURM_NTASKS", true, 1);
    auto local_rank = IntVariable(env, "SLURM_LOCALID", false, 0);
    auto port = IntVariable(env, "MASTER_PORT", false, slurm_port);
    for (const auto* v : {&rank, &world, &local_rank, &port}) {
      if (!v->ok()) return v->status();
    }
    e.rank = *rank;
    e.world_size = *world;
    e.local_rank = *local_rank;
    std::string per_node = env("SLURM_NTASKS_PER_NODE").value_or(env("SLURM_TASKS_PER_NODE").value_or(""));
    e.local_world_size = per_node.empty() ? e.world_size : FirstTaskCount(per_node);
    if (auto addr = env("MASTER_ADDR"); addr.has_value() && !addr->empty()) {
      e.master_addr = *addr;
    } else if (e.world_size > 1) {
      auto host = FirstSlurmHost(env("SLURM_JOB_NODELIST").value_or(env("SLURM_NODELIST").value_or("")));
      if (!host.ok()) return host.status();
      e.master_addr = *host;
    }
    e.master_port = *port;
    if (auto s = CheckRanks(e, source); !s.ok()) return s;
    return e;
  }
  return e;  // one process
}

// ---------------------------------------------------------------------------
// Rendezvous

struct Rendezvous::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  std::string prefix;  // "moerl/<restart>/"
  std::chrono::milliseconds interval{0};
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  std::map<int, std::thread> heartbeats;

  std::string HeartbeatKey(int rank) const { return absl::StrCat(prefix, "heartbeat/", rank); }

  ~Impl() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stopping = true;
    }
    cv.notify_all();
    for (auto& [rank, thread] : heartbeats) thread.join();
  }
};

Rendezvous::Rendezvous(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
Rendezvous::~Rendezvous() = default;

absl::StatusOr<std::shared_ptr<Rendezvous>> Rendezvous::ConnectTcp(const RankEnvironment& env,
                                                                   const CommOptions& options) {
  auto impl = std::make_shared<Impl>();
  impl->prefix = absl::StrCat("moerl/", env.restart_count, "/");
  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<uint16_t>(env.master_port);
  store_options.isServer = env.rank == 0 && !env.agent_hosts_store;
  // Every rank counts itself in (c10d increments the count only with
  // waitWorkers set; only the server then waits for all of them).
  store_options.numWorkers = env.world_size;
  store_options.waitWorkers = true;
  store_options.timeout = options.timeout;
  try {
    impl->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, store_options);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("rank ", env.rank, " could not ",
                                               store_options.isServer ? "serve" : "reach", " the rendezvous store at ",
                                               env.master_addr, ":", env.master_port, " (", env.launcher,
                                               "): ", ErrorText(e)));
  }
  return std::make_shared<Rendezvous>(std::move(impl));
}

std::shared_ptr<Rendezvous> Rendezvous::InProcess() {
  auto impl = std::make_shared<Impl>();
  impl->prefix = "moerl/0/";
  impl->store = c10::make_intrusive<c10d::HashStore>();
  return std::make_shared<Rendezvous>(std::move(impl));
}

void Rendezvous::StartHeartbeat(int rank, std::chrono::milliseconds interval) {
  if (interval.count() <= 0) return;
  Impl* impl = impl_.get();
  std::lock_guard<std::mutex> lock(impl->mu);
  impl->interval = interval;
  if (impl->heartbeats.count(rank)) return;
  impl->heartbeats[rank] = std::thread([impl, rank, interval] {
    const std::string key = impl->HeartbeatKey(rank);
    std::unique_lock<std::mutex> lock(impl->mu);
    while (!impl->stopping) {
      lock.unlock();
      try {
        impl->store->add(key, 1);
      } catch (const std::exception&) {
        return;  // the store is gone; the collective that fails says so
      }
      lock.lock();
      impl->cv.wait_for(lock, interval, [impl] { return impl->stopping; });
    }
  });
}

std::vector<int> Rendezvous::SilentRanks(const std::vector<int>& ranks) const {
  std::chrono::milliseconds interval;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    interval = impl_->interval;
  }
  if (interval.count() <= 0 || ranks.empty()) return {};
  auto read = [&](std::vector<int64_t>* beats) {
    beats->clear();
    for (int r : ranks) beats->push_back(impl_->store->add(impl_->HeartbeatKey(r), 0));
  };
  std::vector<int64_t> before, after;
  read(&before);
  std::this_thread::sleep_for(3 * interval + std::chrono::milliseconds(100));
  read(&after);
  std::vector<int> silent;
  for (size_t i = 0; i < ranks.size(); ++i) {
    if (after[i] == before[i]) silent.push_back(ranks[i]);
  }
  return silent;
}

// ---------------------------------------------------------------------------
// Counters

const char* CommOpName(CommOp op) {
  switch (op) {
    case CommOp::kAllReduce: return "all_reduce";
    case CommOp::kAllToAll: return "all_to_all";
    case CommOp::kAllGather: return "all_gather";
    case CommOp::kReduceScatter: return "reduce_scatter";
    case CommOp::kBroadcast: return "broadcast";
    case CommOp::kSend: return "send";
    case CommOp::kRecv: return "recv";
  }
  return "?";
}

int64_t CommCounts::sent() const {
  int64_t total = 0;
  for (int i = 0; i < kNumCommOps; ++i) {
    if (i != static_cast<int>(CommOp::kRecv)) total += bytes[i];
  }
  return total;
}

CommCounts& CommCounts::operator+=(const CommCounts& o) {
  for (int i = 0; i < kNumCommOps; ++i) {
    bytes[i] += o.bytes[i];
    calls[i] += o.calls[i];
  }
  return *this;
}

CommCounts CommCounts::operator-(const CommCounts& o) const {
  CommCounts out = *this;
  for (int i = 0; i < kNumCommOps; ++i) {
    out.bytes[i] -= o.bytes[i];
    out.calls[i] -= o.calls[i];
  }
  return out;
}

// ---------------------------------------------------------------------------
// ProcessGroup

struct ProcessGroup::Communicator {
  c10::intrusive_ptr<c10d::Backend> gloo;
  c10::intrusive_ptr<c10d::Backend> nccl;  // null unless use_nccl

  c10d::Backend& For(const at::Tensor& t) const {
    if (t.is_cuda()) {
      MOERL_CHECK(nccl) << "a device tensor reached a group built without NCCL";
      return *nccl;
    }
    return *gloo;
  }
};

ProcessGroup::ProcessGroup(std::vector<int> ranks, int rank, std::string kind, std::shared_ptr<Rendezvous> rendezvous,
                           std::shared_ptr<Communicator> communicator)
    : ranks_(std::move(ranks)),
      rank_(rank),
      kind_(std::move(kind)),
      rendezvous_(std::move(rendezvous)),
      communicator_(std::move(communicator)) {}

ProcessGroup::~ProcessGroup() = default;

absl::StatusOr<std::shared_ptr<ProcessGroup>> ProcessGroup::Create(std::vector<int> ranks, int global_rank,
                                                                   std::string kind,
                                                                   std::shared_ptr<Rendezvous> rendezvous,
                                                                   const CommOptions& options) {
  MOERL_CHECK(std::is_sorted(ranks.begin(), ranks.end()));
  auto it = std::find(ranks.begin(), ranks.end(), global_rank);
  MOERL_CHECK(it != ranks.end()) << "rank " << global_rank << " is not in group " << kind;
  const int rank = static_cast<int>(it - ranks.begin());
  if (ranks.size() == 1) {
    return std::make_shared<ProcessGroup>(std::move(ranks), rank, std::move(kind), std::move(rendezvous), nullptr);
  }
  if (options.use_nccl && !c10d_backends::NcclAvailable()) {
    return absl::FailedPreconditionError("NCCL requested, but this build has no CUDA (build with --config=cuda)");
  }
  MOERL_CHECK(rendezvous != nullptr);
  const std::string members = absl::StrJoin(ranks, ",");
  std::string hostname = options.gloo_hostname.empty() ? "127.0.0.1" : options.gloo_hostname;
  auto communicator = std::make_shared<Communicator>();
  const int size = static_cast<int>(ranks.size());
  try {
    const Rendezvous::Impl& r = rendezvous->impl();
    communicator->gloo = c10d_backends::CreateGloo(
        c10::make_intrusive<c10d::PrefixStore>(absl::StrCat(r.prefix, "gloo/", members), r.store), rank, size,
        options.timeout, hostname);
    if (options.use_nccl) {
      communicator->nccl = c10d_backends::CreateNccl(
          c10::make_intrusive<c10d::PrefixStore>(absl::StrCat(r.prefix, "nccl/", members), r.store), rank, size,
          options.timeout);
    }
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("building process group ", kind, " [", members, "] on rank ",
                                               global_rank, ": ", ErrorText(e)));
  }
  return std::make_shared<ProcessGroup>(std::move(ranks), rank, std::move(kind), std::move(rendezvous),
                                        std::move(communicator));
}

std::shared_ptr<ProcessGroup> ProcessGroup::WithKind(std::string kind) const {
  return std::make_shared<ProcessGroup>(ranks_, rank_, std::move(kind), rendezvous_, communicator_);
}

void ProcessGroup::Count(CommOp op, int64_t bytes) const {
  bytes_[static_cast<int>(op)].fetch_add(bytes, std::memory_order_relaxed);
  calls_[static_cast<int>(op)].fetch_add(1, std::memory_order_relaxed);
}

CommCounts ProcessGroup::comm_counts() const {
  CommCounts out;
  for (int i = 0; i < kNumCommOps; ++i) {
    out.bytes[i] = bytes_[i].load(std::memory_order_relaxed);
    out.calls[i] = calls_[i].load(std::memory_order_relaxed);
  }
  return out;
}

std::string ProcessGroup::name() const { return absl::StrCat(kind_, " [", absl::StrJoin(ranks_, ","), "]"); }

void ProcessGroup::Fail(absl::string_view op, const std::exception& e) const {
  std::string message = absl::StrCat(op, " on group ", name(), " failed on global rank ", ranks_[rank_], ": ",
                                     ErrorText(e));
  std::vector<int> others;
  for (int r : ranks_) {
    if (r != ranks_[rank_]) others.push_back(r);
  }
  try {
    std::vector<int> silent = rendezvous_->SilentRanks(others);
    if (!silent.empty()) {
      absl::StrAppend(&message, "; rank", silent.size() > 1 ? "s " : " ", absl::StrJoin(silent, ","),
                      " stopped sending heartbeats (exited or hung)");
    }
  } catch (const std::exception& store_error) {
    absl::StrAppend(&message, "; the rendezvous store is unreachable too (its host, rank 0 or torchrun's agent, ",
                    "may be gone): ", ErrorText(store_error));
  }
  throw CollectiveError(message);
}

void ProcessGroup::AllReduceSum(at::Tensor& tensor) const {
  if (!communicator_) return;
  MOERL_CHECK(tensor.is_contiguous());
  Count(CommOp::kAllReduce, 2 * (size() - 1) * static_cast<int64_t>(tensor.nbytes()) / size());
  try {
    std::vector<at::Tensor> tensors = {tensor};
    c10d::AllreduceOptions options;
    options.reduceOp = c10d::ReduceOp::SUM;
    communicator_->For(tensor).allreduce(tensors, options)->wait();
  } catch (const std::exception& e) {
    Fail("all_reduce", e);
  }
}

at::Tensor ProcessGroup::AllToAll(const at::Tensor& input_nd, const std::vector<int64_t>& send_rows,
                                  const std::vector<int64_t>& recv_rows) const {
  MOERL_CHECK(static_cast<int>(send_rows.size()) == size() && static_cast<int>(recv_rows.size()) == size());
  const int64_t sent = std::accumulate(send_rows.begin(), send_rows.end(), int64_t{0});
  const int64_t received = std::accumulate(recv_rows.begin(), recv_rows.end(), int64_t{0});
  MOERL_CHECK(sent == input_nd.size(0)) << sent << " rows to send, input has " << input_nd.size(0);
  std::vector<int64_t> shape = input_nd.sizes().vec();
  shape[0] = received;
  at::Tensor output = at::empty(shape, input_nd.options());
  if (!communicator_) {
    output.copy_(input_nd);
    return output;
  }
  const int64_t row_bytes = input_nd.size(0) > 0 ? static_cast<int64_t>(input_nd.nbytes()) / input_nd.size(0) : 0;
  Count(CommOp::kAllToAll, (sent - send_rows[rank_]) * row_bytes);
  try {
    at::Tensor input = input_nd.contiguous();
    std::vector<int64_t> out_splits = recv_rows, in_splits = send_rows;
    c10d::AllToAllOptions options;
    communicator_->For(input).alltoall_base(output, input, out_splits, in_splits, options)->wait();
  } catch (const std::exception& e) {
    Fail("all_to_all", e);
  }
  return output;
}

at::Tensor ProcessGroup::AllToAllEqual(const at::Tensor& input, CommOp count_as) const {
  MOERL_CHECK(input.size(0) % size() == 0);
  at::Tensor output = at::empty_like(input);
  if (!communicator_) {
    output.copy_(input);
    return output;
  }
  Count(count_as, (size() - 1) * static_cast<int64_t>(input.nbytes()) / size());
  try {
    at::Tensor in = input.contiguous();
    std::vector<int64_t> no_splits;
    c10d::AllToAllOptions options;
    communicator_->For(in).alltoall_base(output, in, no_splits, no_splits, options)->wait();
  } catch (const std::exception& e) {
    Fail("all_to_all", e);
  }
  return output;
}

void ProcessGroup::Broadcast(at::Tensor& tensor, int root) const {
  if (!communicator_) return;
  MOERL_CHECK(tensor.is_contiguous());
  if (root == rank_) Count(CommOp::kBroadcast, static_cast<int64_t>(tensor.nbytes()));
  try {
    std::vector<at::Tensor> tensors = {tensor};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    communicator_->For(tensor).broadcast(tensors, options)->wait();
  } catch (const std::exception& e) {
    Fail("broadcast", e);
  }
}

ProcessGroup::PendingSend ProcessGroup::Send(const at::Tensor& tensor, int dst, int tag) const {
  MOERL_CHECK(communicator_ && dst >= 0 && dst < size() && dst != rank_) << "send to member " << dst << " of " << name();
  MOERL_CHECK(tensor.is_contiguous());
  Count(CommOp::kSend, static_cast<int64_t>(tensor.nbytes()));
  c10::intrusive_ptr<c10d::Work> work;
  try {
    std::vector<at::Tensor> tensors = {tensor};
    work = communicator_->For(tensor).send(tensors, dst, tag);
  } catch (const std::exception& e) {
    Fail("send", e);
  }
  return PendingSend([this, work, tensor] {
    try {
      work->wait();
    } catch (const std::exception& e) {
      Fail("send", e);
    }
  });
}

void ProcessGroup::Recv(at::Tensor& tensor, int src, int tag) const {
  MOERL_CHECK(communicator_ && src >= 0 && src < size() && src != rank_) << "recv from member " << src << " of " << name();
  MOERL_CHECK(tensor.is_contiguous());
  Count(CommOp::kRecv, static_cast<int64_t>(tensor.nbytes()));
  try {
    std::vector<at::Tensor> tensors = {tensor};
    communicator_->For(tensor).recv(tensors, src, tag)->wait();
  } catch (const std::exception& e) {
    Fail("recv", e);
  }
}

void ProcessGroup::Barrier() const {
  if (!communicator_) return;
  try {
    communicator_->gloo->barrier()->wait();
  } catch (const std::exception& e) {
    Fail("barrier", e);
  }
}

}  // namespace moerl
