#include "rollout/server/scheduler.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/ops/from_blob.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <functional>
#include <limits>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status.h"
#include "rollout/server/forwarder.h"
#include "trainer/model/hf_weights.h"
#include "trainer/model/logprobs.h"
#include "trainer/model/model.h"

namespace moerl {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int64_t kMaxPrefillRows = 4096;  // bounds the prefill's activations
constexpr int64_t kDefaultContextCap = 8192;  // default positions per KV slot

struct Sequence {
  SequenceRequest req;
  std::promise<SequenceResult> promise;
  SequenceResult result;
  uint64_t arrival = 0;
  int64_t slot = -1;
  Clock::time_point start;
  std::unique_ptr<at::Generator> gen;
  std::vector<int64_t> stop_ids;
  bool abort = false;
  bool live = false;  // counted in running_
  std::string abort_message;
};

struct WeightSwap {
  std::shared_ptr<Qwen3Model> model;
  std::string path;
  std::string version;
  bool abort_all = false;
  std::promise<int64_t> done;  // requests aborted
};

bool Contains(const std::vector<int64_t>& v, int64_t x) { return std::find(v.begin(), v.end(), x) != v.end(); }

}  // namespace

std::optional<std::string> VersionFromFolderName(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const std::string name = p.substr(p.find_last_of('/') == std::string::npos ? 0 : p.find_last_of('/') + 1);
  uint64_t n = 0;
  if (name.size() >= 2 && name[0] == 'v' && absl::SimpleAtoi(name.substr(1), &n) &&
      std::all_of(name.begin() + 1, name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::to_string(n);
  }
  return std::nullopt;
}

class Scheduler::Impl {
 public:
  Impl(const SchedulerOptions& options, std::shared_ptr<Qwen3Model> model)
      : options_(options), model_(std::move(model)), config_(model_->config()) {
    weight_version_ = options.weight_version;
    model_path_ = options.model_path;
    cache_ = KvCache::Allocate(config_.num_hidden_layers, options.max_running_requests, config_.num_key_value_heads,
                               options.context_length, config_.head_dim, model_->dtype());
    forwarder_ = std::make_unique<Forwarder>(*model_, &cache_);
    for (int64_t s = options.max_running_requests - 1; s >= 0; --s) free_slots_.push_back(s);
    // Torch's intra-op thread count is per thread (OpenMP): the scheduler
    // thread takes the creator's, or it would run the GEMMs on the default.
    const int threads = at::get_num_threads();
    thread_ = std::thread([this, threads] {
      at::set_num_threads(threads);
      Loop();
    });
  }

  ~Impl() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  absl::Status Check(const SequenceRequest& r, const std::string& where) const {
    if (r.prompt.empty()) return absl::InvalidArgumentError(absl::StrCat(where, " is empty"));
    for (size_t j = 0; j < r.prompt.size(); ++j) {
      if (r.prompt[j] < 0 || r.prompt[j] >= config_.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat(where, "[", j, "] is ", r.prompt[j],
                                                       ", outside the vocabulary [0, ", config_.vocab_size, ")"));
      }
    }
    const int64_t p = static_cast<int64_t>(r.prompt.size());
    if (p > options_.context_length) {
      return absl::InvalidArgumentError(absl::StrCat(where, " has ", p, " tokens, more than the context length ",
                                                     options_.context_length, " (sglang.context_length)"));
    }
    if (p + r.params.max_new_tokens > options_.context_length) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sampling_params.max_new_tokens ", r.params.max_new_tokens, " + the ", p, " tokens of ", where,
          " exceed the context length ", options_.context_length, "; lower max_new_tokens to at most ",
          options_.context_length - p));
    }
    return absl::OkStatus();
  }

  std::future<SequenceResult> Submit(SequenceRequest request) {
    auto s = std::make_unique<Sequence>();
    s->req = std::move(request);
    s->start = Clock::now();
    s->stop_ids = s->req.params.stop_token_ids;
    if (!s->req.params.ignore_eos) s->stop_ids.insert(s->stop_ids.end(), config_.eos_token_ids.begin(), config_.eos_token_ids.end());
    std::future<SequenceResult> f = s->promise.get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      s->arrival = next_arrival_++;
      queue_.push_back(std::move(s));
    }
    cv_.notify_all();
    return f;
  }

  bool Abort(const std::string& rid) {
    std::lock_guard<std::mutex> lock(mu_);
    bool found = live_rids_.count(rid) > 0;
    for (const auto& s : queue_) found |= s->req.rid == rid;
    if (found) abort_rids_.insert(rid);
    cv_.notify_all();
    return found;
  }

  void AbortAll(const std::string& message) {
    std::lock_guard<std::mutex> lock(mu_);
    abort_before_ = next_arrival_;
    abort_all_message_ = message;
    cv_.notify_all();
  }

  void Pause(PauseMode mode) {
    std::lock_guard<std::mutex> lock(mu_);
    paused_ = true;
    if (mode == PauseMode::kAbort) {
      abort_before_ = next_arrival_;
      abort_all_message_ = "generation paused (/pause_generation)";
    }
    cv_.notify_all();
  }

  void Continue() {
    std::lock_guard<std::mutex> lock(mu_);
    paused_ = false;
    cv_.notify_all();
  }

  bool paused() const {
    std::lock_guard<std::mutex> lock(mu_);
    return paused_;
  }

  absl::StatusOr<int64_t> UpdateWeights(const std::string& path, const std::optional<std::string>& version,
                                        bool abort_all) {
    absl::StatusOr<std::shared_ptr<Qwen3Model>> loaded;
    {
      ScopedStageTimer load(options_.timing, TimeBucket::kTransport);  // read and decode the files
      loaded = LoadHfModel(path);
    }
    if (!loaded.ok()) return Annotate(loaded.status(), absl::StrCat("loading ", path));
    const ModelConfig& c = (*loaded)->config();
    if (c.vocab_size != config_.vocab_size || c.hidden_size != config_.hidden_size ||
        c.num_hidden_layers != config_.num_hidden_layers || c.num_experts != config_.num_experts ||
        c.num_experts_per_tok != config_.num_experts_per_tok || c.num_key_value_heads != config_.num_key_value_heads ||
        c.head_dim != config_.head_dim || c.NumMoeLayers() != config_.NumMoeLayers()) {
      return absl::InvalidArgumentError(absl::StrCat(path, " holds a different architecture than the served model ",
                                                     model_path_, " (compare their config.json)"));
    }
    if (options_.dtype == "bfloat16") (*loaded)->to(at::kBFloat16);
    auto swap = std::make_unique<WeightSwap>();
    swap->model = *std::move(loaded);
    swap->path = path;
    swap->abort_all = abort_all;
    std::future<int64_t> done = swap->done.get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (swap_) return absl::FailedPreconditionError("another weight update is in progress");
      if (version) {
        swap->version = *version;
      } else if (std::optional<std::string> v = VersionFromFolderName(path)) {
        swap->version = *v;
      } else {
        int64_t n = 0;
        swap->version = absl::SimpleAtoi(weight_version_, &n) ? std::to_string(n + 1) : "1";
      }
      swap_ = std::move(swap);
    }
    cv_.notify_all();
    return done.get();
  }

  ModelInfo Info() const {
    std::lock_guard<std::mutex> lock(mu_);
    ModelInfo info;
    info.model_path = model_path_;
    info.weight_version = weight_version_;
    info.vocab_size = config_.vocab_size;
    info.moe_layers = config_.NumMoeLayers();
    info.top_k = config_.HasMoeLayers() ? config_.num_experts_per_tok : 0;
    info.context_length = options_.context_length;
    info.max_running_requests = options_.max_running_requests;
    info.dtype = options_.dtype;
    info.deterministic = options_.deterministic;
    return info;
  }

  int64_t running() const { return running_.load(); }
  int64_t queued() const {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int64_t>(queue_.size());
  }

 private:
  bool HasWorkLocked() const {
    if (!abort_rids_.empty() || abort_before_ > aborted_up_to_ || swap_) return true;
    if (paused_) return false;
    return !live_.empty() || (!queue_.empty() && !free_slots_.empty());
  }

  void Loop() {
    while (true) {
      std::vector<std::unique_ptr<Sequence>> admitted, dropped;
      std::unique_ptr<WeightSwap> swap;
      bool decode = false;
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (!stop_ && !HasWorkLocked()) {
          ScopedStageTimer idle(options_.timing, TimeBucket::kWaitInput);
          cv_.wait(lock, [&] { return stop_ || HasWorkLocked(); });
        }
        if (stop_) {
          abort_before_ = next_arrival_;
          abort_all_message_ = "server shutting down";
        }
        // Aborts: queued ones leave now; running ones are finished below.
        const uint64_t before = abort_before_;
        for (auto it = queue_.begin(); it != queue_.end();) {
          if ((*it)->arrival < before || abort_rids_.count((*it)->req.rid)) {
            (*it)->abort_message = (*it)->arrival < before ? abort_all_message_ : "aborted by /abort_request";
            dropped.push_back(std::move(*it));
            it = queue_.erase(it);
          } else {
            ++it;
          }
        }
        for (auto& s : live_) {
          if (s->arrival < before || abort_rids_.count(s->req.rid)) {
            s->abort = true;
            s->abort_message = s->arrival < before ? abort_all_message_ : "aborted by /abort_request";
          }
        }
        aborted_up_to_ = before;
        abort_rids_.clear();
        if (swap_ && swap_->abort_all) {
          for (auto& q : queue_) {
            q->abort_message = "aborted for a weight update";
            dropped.push_back(std::move(q));
          }
          queue_.clear();
          for (auto& s : live_) {
            s->abort = true;
            if (s->abort_message.empty()) s->abort_message = "aborted for a weight update";
          }
        }
        if (swap_ && (swap_->abort_all || paused_ || live_.empty())) swap = std::move(swap_);
        if (!stop_ && !paused_ && !swap_) {
          while (!queue_.empty() && !free_slots_.empty()) {
            admitted.push_back(std::move(queue_.front()));
            queue_.pop_front();
            admitted.back()->slot = free_slots_.back();
            free_slots_.pop_back();
            live_rids_.insert(admitted.back()->req.rid);
          }
        }
        decode = !paused_;
      }
      int64_t aborted = static_cast<int64_t>(dropped.size());
      for (auto& s : dropped) AnswerBeforePrefill(*s);
      for (auto it = live_.begin(); it != live_.end();) {
        if ((*it)->abort) {
          ++aborted;
          Finish(std::move(*it), "abort");
          it = live_.erase(it);
        } else {
          ++it;
        }
      }
      if (swap) {
        ApplySwap(*swap);
        swap->done.set_value(aborted);
      }
      if (stop_) {
        for (auto& s : admitted) AnswerBeforePrefill(*s);
        break;
      }
      ScopedStageTimer compute(options_.timing, TimeBucket::kCompute);
      try {
        // Together (one pass over the weights) or one by one (each
        // sequence's numbers independent of the others), at most
        // kMaxPrefillRows prompt tokens per forward.
        for (size_t b = 0; b < admitted.size();) {
          size_t e = b + 1;
          int64_t rows = static_cast<int64_t>(admitted[b]->req.prompt.size());
          while (options_.batch_prefill && e < admitted.size() &&
                 rows + static_cast<int64_t>(admitted[e]->req.prompt.size()) <= kMaxPrefillRows) {
            rows += static_cast<int64_t>(admitted[e++]->req.prompt.size());
          }
          PrefillGroup(admitted, b, e);
          b = e;
        }
        if (decode && !live_.empty()) {
          DecodeStep();
          if (options_.decode_step_delay_us > 0) {
            std::this_thread::sleep_for(std::chrono::microseconds(options_.decode_step_delay_us));
          }
        }
      } catch (const std::exception& e) {
        // A torch error must not take the server down: answer what runs.
        MOERL_LOG(ERROR) << "generation step failed: " << e.what();
        for (auto& s : live_) {
          s->abort_message = absl::StrCat("internal error: ", e.what());
          Finish(std::move(s), "abort");
        }
        live_.clear();
        for (auto& s : admitted) {
          if (!s) continue;
          {
            std::lock_guard<std::mutex> lock(mu_);
            free_slots_.push_back(s->slot);
            live_rids_.erase(s->req.rid);
          }
          AnswerBeforePrefill(*s);
        }
      }
    }
  }

  void ApplySwap(WeightSwap& swap) {
    forwarder_.reset();
    model_ = swap.model;
    forwarder_ = std::make_unique<Forwarder>(*model_, &cache_);
    std::lock_guard<std::mutex> lock(mu_);
    weight_version_ = swap.version;
    model_path_ = swap.path;
    MOERL_LOG(INFO) << "loaded weights from " << swap.path << ", weight_version " << weight_version_;
  }

  std::string CurrentVersion() {
    std::lock_guard<std::mutex> lock(mu_);
    return weight_version_;
  }

  void AnswerBeforePrefill(Sequence& s) {
    s.result.rid = s.req.rid;
    s.result.finish_type = "abort";
    s.result.abort_message = "Abort before prefill";
    if (!s.abort_message.empty()) s.result.abort_message += ": " + s.abort_message;
    s.result.aborted_before_prefill = true;
    s.result.weight_version = CurrentVersion();
    s.result.e2e_latency_s = std::chrono::duration<double>(Clock::now() - s.start).count();
    s.promise.set_value(std::move(s.result));
  }

  // SGLang's rule: a temperature below 1e-6 is greedy (logits / T would overflow).
  static bool IsGreedy(const Sequence& s) { return s.req.params.temperature < 1e-6; }
  double LogprobTemperature(const Sequence& s) const { return IsGreedy(s) ? 1.0 : s.req.params.temperature; }

  // Samples the next token from logits row `logits` and decides whether the
  // sequence is done. Returns true when it finished (and was answered).
  bool Advance(Sequence& s, const float* logits) {
    const int64_t vocab = config_.vocab_size;
    int64_t token = 0;
    if (IsGreedy(s)) {
      token = std::max_element(logits, logits + vocab) - logits;
    } else {
      at::Tensor row = at::from_blob(const_cast<float*>(logits), {1, vocab}, at::TensorOptions().dtype(at::kFloat));
      token = SampleRow(row, s.req.params, *s.gen);
    }
    s.result.tokens.push_back(token);
    s.result.logprobs.push_back(TokenLogProb(logits, vocab, token, LogprobTemperature(s)));
    const int64_t n = static_cast<int64_t>(s.result.tokens.size());
    if (n >= s.req.params.min_new_tokens && Contains(s.stop_ids, token)) {
      s.result.matched = token;
      s.result.finish_type = "stop";
      return true;
    }
    if (n >= s.req.params.max_new_tokens) {
      s.result.finish_type = "length";
      return true;
    }
    return false;
  }

  // Prefills admitted[begin, end) in one forward (each its own slot), then
  // samples each one's first token. Moves each sequence out of `admitted`
  // (finished, or into live_), so that a failure leaves the rest there.
  void PrefillGroup(std::vector<std::unique_ptr<Sequence>>& admitted, size_t begin, size_t end) {
    const int64_t vocab = config_.vocab_size;
    std::vector<int64_t> tokens, slots, offsets;
    for (size_t i = begin; i < end; ++i) {
      Sequence& s = *admitted[i];
      s.gen = std::make_unique<at::Generator>(at::make_generator<at::CPUGeneratorImpl>(s.req.seed));
      s.result.rid = s.req.rid;
      s.result.prompt_tokens = static_cast<int64_t>(s.req.prompt.size());
      cache_.lengths[s.slot] = 0;
      offsets.push_back(static_cast<int64_t>(tokens.size()));
      tokens.insert(tokens.end(), s.req.prompt.begin(), s.req.prompt.end());
      slots.insert(slots.end(), s.req.prompt.size(), s.slot);
    }
    std::vector<int32_t> routes;
    c10::InferenceMode inference;
    forwarder_->Step(tokens, slots, &routes);
    const int64_t width = static_cast<int64_t>(routes.size()) / static_cast<int64_t>(tokens.size());
    // The LM head over chunks of at most 16 rows (SmallGemmNT: each row's
    // logits do not depend on the others).
    auto logits_of = [&](const std::vector<int64_t>& rows, const std::function<void(size_t, const float*)>& use) {
      for (size_t c = 0; c < rows.size(); c += 16) {
        std::vector<int64_t> chunk(rows.begin() + c, rows.begin() + std::min(rows.size(), c + 16));
        logits_.resize(chunk.size() * vocab);
        forwarder_->Logits(chunk, logits_.data());
        for (size_t i = 0; i < chunk.size(); ++i) use(c + i, &logits_[i * vocab]);
      }
    };
    for (size_t i = begin; i < end; ++i) {
      std::unique_ptr<Sequence>& s = admitted[i];
      const int64_t p = s->result.prompt_tokens, off = offsets[i - begin];
      if (s->req.return_routed_experts) {
        s->result.routed_experts.assign(routes.begin() + off * width, routes.begin() + (off + p) * width);
      }
      const int64_t start = s->req.logprob_start_len;
      if (s->req.return_logprob && start >= 0 && !options_.deterministic) {
        // Prompt token t + 1 from row t.
        std::vector<int64_t> rows;
        for (int64_t t = start; t < p - 1; ++t) rows.push_back(off + t);
        logits_of(rows, [&](size_t j, const float* logits) {
          s->result.input_logprobs.push_back(
              TokenLogProb(logits, vocab, s->req.prompt[start + 1 + j], LogprobTemperature(*s)));
        });
      }
      bool done = true;
      if (s->req.params.max_new_tokens == 0) {
        s->result.finish_type = "length";
      } else {
        logits_of({off + p - 1}, [&](size_t, const float* logits) { done = Advance(*s, logits); });
      }
      if (done) {
        Finish(std::move(s), "");
      } else {
        s->live = true;
        ++running_;
        live_.push_back(std::move(s));
      }
    }
  }

  void DecodeStep() {
    const int64_t rows = static_cast<int64_t>(live_.size()), vocab = config_.vocab_size;
    std::vector<int64_t> tokens, slots, all_rows;
    for (int64_t i = 0; i < rows; ++i) {
      tokens.push_back(live_[i]->result.tokens.back());
      slots.push_back(live_[i]->slot);
      all_rows.push_back(i);
    }
    std::vector<int32_t> routes;
    std::vector<bool> finished(rows, false);
    {
      c10::InferenceMode inference;
      forwarder_->Step(tokens, slots, &routes);
      logits_.resize(rows * vocab);
      forwarder_->Logits(all_rows, logits_.data());
      const int64_t width = rows == 0 ? 0 : static_cast<int64_t>(routes.size()) / rows;
      for (int64_t i = 0; i < rows; ++i) {
        Sequence& s = *live_[i];
        if (s.req.return_routed_experts) {
          s.result.routed_experts.insert(s.result.routed_experts.end(), routes.begin() + i * width,
                                         routes.begin() + (i + 1) * width);
        }
        finished[i] = Advance(s, &logits_[i * vocab]);
      }
    }
    std::vector<std::unique_ptr<Sequence>> still;
    for (int64_t i = 0; i < rows; ++i) {
      if (finished[i]) {
        Finish(std::move(live_[i]), "");
      } else {
        still.push_back(std::move(live_[i]));
      }
    }
    live_ = std::move(still);
  }

  // Frees the slot, rescoring in deterministic mode, and answers.
  void Finish(std::unique_ptr<Sequence> s, const std::string& type) {
    if (!type.empty()) {
      s->result.finish_type = type;
      s->result.matched.reset();
    }
    if (s->result.finish_type == "abort") s->result.abort_message = s->abort_message;
    if (s->live) --running_;  // before the answer: a client that saw it finish never sees it counted
    cache_.lengths[s->slot] = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      free_slots_.push_back(s->slot);
      live_rids_.erase(s->req.rid);
      s->result.weight_version = weight_version_;
    }
    SequenceResult& r = s->result;
    if (options_.timing != nullptr) {
      options_.timing->Count("generated_tokens", static_cast<int64_t>(r.tokens.size()));
    }
    const int64_t p = static_cast<int64_t>(s->req.prompt.size());
    if (s->req.return_routed_experts) {
      const int64_t width = config_.NumMoeLayers() * config_.num_experts_per_tok;
      const int64_t keep_rows = std::max<int64_t>(p + static_cast<int64_t>(r.tokens.size()) - 1, 0);
      r.routed_experts.resize(std::min<size_t>(r.routed_experts.size(), keep_rows * width));
    }
    if (options_.deterministic && s->req.return_logprob) {
      std::vector<int64_t> full = s->req.prompt;
      full.insert(full.end(), r.tokens.begin(), r.tokens.end());
      const double t = LogprobTemperature(*s);
      if (!r.tokens.empty()) {
        absl::StatusOr<std::vector<std::vector<float>>> scored = ScoreSequences(*model_, {full}, {p}, t);
        MOERL_CHECK(scored.ok()) << scored.status().ToString();
        r.logprobs = (*scored)[0];
      }
      if (s->req.logprob_start_len >= 0 && s->req.logprob_start_len + 1 < p) {
        absl::StatusOr<std::vector<std::vector<float>>> scored =
            ScoreSequences(*model_, {s->req.prompt}, {s->req.logprob_start_len + 1}, t);
        MOERL_CHECK(scored.ok()) << scored.status().ToString();
        r.input_logprobs = (*scored)[0];
      }
    }
    r.e2e_latency_s = std::chrono::duration<double>(Clock::now() - s->start).count();
    s->promise.set_value(std::move(r));
  }

  const SchedulerOptions options_;
  std::shared_ptr<Qwen3Model> model_;  // scheduler thread (swapped there)
  const ModelConfig config_;           // architecture: the same across swaps
  KvCache cache_;
  std::unique_ptr<Forwarder> forwarder_;
  std::vector<std::unique_ptr<Sequence>> live_;  // scheduler thread
  std::vector<float> logits_;
  std::atomic<int64_t> running_{0};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool paused_ = false;
  std::deque<std::unique_ptr<Sequence>> queue_;
  std::vector<int64_t> free_slots_;
  std::set<std::string> live_rids_;
  std::set<std::string> abort_rids_;
  uint64_t next_arrival_ = 0;
  uint64_t abort_before_ = 0;   // requests that arrived before this are aborted
  uint64_t aborted_up_to_ = 0;  // abort_before_ already applied
  std::string abort_all_message_;
  std::unique_ptr<WeightSwap> swap_;
  std::string weight_version_;
  std::string model_path_;
  std::thread thread_;
};

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(const SchedulerOptions& options) {
  if (options.dtype != "float32" && options.dtype != "bfloat16") {
    return absl::InvalidArgumentError(absl::StrCat("dtype must be float32 or bfloat16, found ", options.dtype));
  }
  if (options.max_running_requests < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_running_requests must be >= 1, found ", options.max_running_requests));
  }
  absl::StatusOr<std::shared_ptr<Qwen3Model>> model = LoadHfModel(options.model_path);
  if (!model.ok()) return Annotate(model.status(), absl::StrCat("loading ", options.model_path));
  SchedulerOptions resolved = options;
  const int64_t max_pos = (*model)->config().max_position_embeddings;
  // Unset: the model's limit, capped so that a large model's default KV cache
  // (slots x positions) fits in memory; set sglang.context_length for more.
  if (resolved.context_length <= 0) resolved.context_length = std::min<int64_t>(max_pos, kDefaultContextCap);
  if (max_pos > 0 && resolved.context_length > max_pos) {
    return absl::InvalidArgumentError(absl::StrCat("context length ", resolved.context_length,
                                                   " exceeds the model's max_position_embeddings ", max_pos));
  }
  if (resolved.context_length <= 0) {
    return absl::InvalidArgumentError("the model has no max_position_embeddings: set sglang.context_length");
  }
  if (resolved.weight_version.empty()) {
    resolved.weight_version = VersionFromFolderName(options.model_path).value_or("default");
  }
  if (options.dtype == "bfloat16") (*model)->to(at::kBFloat16);
  const ModelConfig& mc = (*model)->config();
  const double kv_bytes = 2.0 * mc.num_hidden_layers * resolved.max_running_requests * mc.num_key_value_heads *
                          resolved.context_length * mc.head_dim * (options.dtype == "bfloat16" ? 2 : 4);
  MOERL_LOG(INFO) << "KV cache: " << resolved.max_running_requests << " slots x " << resolved.context_length
                  << " positions = " << kv_bytes / (1 << 20) << " MiB";
  return std::unique_ptr<Scheduler>(new Scheduler(std::make_unique<Impl>(resolved, *std::move(model))));
}

Scheduler::Scheduler(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Scheduler::~Scheduler() = default;

absl::Status Scheduler::Check(const SequenceRequest& r, const std::string& where) const { return impl_->Check(r, where); }
std::future<SequenceResult> Scheduler::Submit(SequenceRequest r) { return impl_->Submit(std::move(r)); }
bool Scheduler::Abort(const std::string& rid) { return impl_->Abort(rid); }
void Scheduler::AbortAll(const std::string& message) { impl_->AbortAll(message); }
void Scheduler::Pause(PauseMode mode) { impl_->Pause(mode); }
void Scheduler::Continue() { impl_->Continue(); }
bool Scheduler::paused() const { return impl_->paused(); }
absl::StatusOr<int64_t> Scheduler::UpdateWeightsFromDisk(const std::string& path, const std::optional<std::string>& version,
                                                         bool abort_all) {
  return impl_->UpdateWeights(path, version, abort_all);
}
ModelInfo Scheduler::Info() const { return impl_->Info(); }
int64_t Scheduler::running() const { return impl_->running(); }
int64_t Scheduler::queued() const { return impl_->queued(); }

}  // namespace moerl
