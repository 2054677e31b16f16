#include "rollout/server/scheduler.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/ops/cumsum.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/full_like.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/multinomial.h>
#include <ATen/ops/sort.h>
#include <ATen/ops/tensor.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <limits>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status.h"
#include "rollout/engine/decode_forward.h"
#include "trainer/model/hf_weights.h"
#include "trainer/model/logprobs.h"
#include "trainer/model/model.h"

namespace moerl {
namespace {

using Clock = std::chrono::steady_clock;

// The engine's sampling (engine.cc SampleRows) for one row [1, v].
int64_t SampleRow(const at::Tensor& logits_1v, const SamplingParams& c, at::Generator& gen) {
  const int64_t top_k = c.top_k < 0 ? 0 : c.top_k;
  at::Tensor z_bv = logits_1v.to(at::kFloat) / c.temperature;
  const float neg_inf = -std::numeric_limits<float>::infinity();
  if (top_k > 0 && top_k < z_bv.size(1)) {
    at::Tensor kth_b1 = std::get<0>(z_bv.topk(top_k, -1)).narrow(1, top_k - 1, 1);
    z_bv = z_bv.masked_fill(z_bv < kth_b1, neg_inf);
  }
  if (c.top_p < 1.0) {
    auto [sorted_bv, order_bv] = at::sort(z_bv, -1, /*descending=*/true);
    at::Tensor probs_bv = sorted_bv.softmax(-1);
    at::Tensor drop_bv = (at::cumsum(probs_bv, -1) - probs_bv) >= c.top_p;
    sorted_bv = sorted_bv.masked_fill(drop_bv, neg_inf);
    z_bv = at::full_like(z_bv, neg_inf).scatter(1, order_bv, sorted_bv);
  }
  return at::multinomial(z_bv.softmax(-1), 1, /*replacement=*/false, gen).item<int64_t>();
}

// The engine's formula (engine.cc TokenLogProbsFromLogits) for one row.
float TokenLogProb(const float* logits, int64_t vocab, int64_t token, double temperature) {
  const float t = static_cast<float>(temperature);
  float top = -std::numeric_limits<float>::infinity();
  for (int64_t v = 0; v < vocab; ++v) top = std::max(top, temperature == 1.0 ? logits[v] : logits[v] / t);
  double sum = 0;
  for (int64_t v = 0; v < vocab; ++v) sum += std::exp((temperature == 1.0 ? logits[v] : logits[v] / t) - top);
  const float lse = top + static_cast<float>(std::log(sum));
  const float z = temperature == 1.0 ? logits[token] : logits[token] / t;
  return z - lse;
}

// One forward of rows of several slots (whole prompts or one token each):
// DecodeForward for fp32 models, the training forward with the cache else.
class Forwarder {
 public:
  Forwarder(Qwen3Model& model, KvCache* cache) : model_(model), cache_(cache) {
    if (DecodeForward::Supported(model)) decoder_ = std::make_unique<DecodeForward>(model, cache);
  }

  // Rows of one slot are consecutive. Fills routes [rows, moe_layers * top_k].
  void Step(const std::vector<int64_t>& tokens, const std::vector<int64_t>& slots, std::vector<int32_t>* routes) {
    rows_ = static_cast<int64_t>(tokens.size());
    if (decoder_) {
      hidden_ = &decoder_->Step(tokens, slots);
      *routes = decoder_->routes();
      return;
    }
    const auto i64 = at::TensorOptions().dtype(at::kLong);
    ModelInput in;
    std::vector<int64_t> positions;
    cache_->slot_of_segment.clear();
    for (int64_t i = 0; i < rows_; ++i) {
      if (i == 0 || slots[i] != slots[i - 1]) {
        cache_->slot_of_segment.push_back(slots[i]);
        in.layout.seq_lens.push_back(0);
      }
      positions.push_back(cache_->lengths[slots[i]] + in.layout.seq_lens.back()++);
    }
    in.tokens_t = at::tensor(tokens, i64);
    in.positions_t = at::tensor(positions, i64);
    in.cache = cache_;
    ModelOutput out = model_.Forward(in);
    hidden_td_ = out.hidden_td;
    const int64_t k = model_.config().num_experts_per_tok, m = static_cast<int64_t>(out.topk_ids_tk.size());
    routes->assign(rows_ * m * k, 0);
    for (int64_t l = 0; l < m; ++l) {
      at::Tensor ids = out.topk_ids_tk[l].to(at::kLong).contiguous();
      const int64_t* p = ids.data_ptr<int64_t>();
      for (int64_t t = 0; t < rows_; ++t) {
        for (int64_t j = 0; j < k; ++j) (*routes)[(t * m + l) * k + j] = static_cast<int32_t>(p[t * k + j]);
      }
    }
  }

  // logits_nv (fp32) of the given rows of the last Step.
  void Logits(const std::vector<int64_t>& rows, float* logits_nv) {
    const int64_t n = static_cast<int64_t>(rows.size());
    if (decoder_) {
      const int64_t d = model_.config().hidden_size;
      gathered_.resize(n * d);
      for (int64_t i = 0; i < n; ++i) {
        std::copy(hidden_->begin() + rows[i] * d, hidden_->begin() + (rows[i] + 1) * d, gathered_.begin() + i * d);
      }
      decoder_->Logits(gathered_.data(), n, logits_nv);
      return;
    }
    const auto i64 = at::TensorOptions().dtype(at::kLong);
    at::Tensor h = hidden_td_.index_select(0, at::tensor(rows, i64));
    at::Tensor out = at::from_blob(logits_nv, {n, model_.config().vocab_size}, at::TensorOptions().dtype(at::kFloat));
    out.copy_(at::linear(h, model_.lm_head_weight()));
  }

 private:
  Qwen3Model& model_;
  KvCache* cache_;
  std::unique_ptr<DecodeForward> decoder_;
  int64_t rows_ = 0;
  const std::vector<float>* hidden_ = nullptr;
  at::Tensor hidden_td_;
  std::vector<float> gathered_;
};

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
    thread_ = std::thread([this] { Loop(); });
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
    absl::StatusOr<std::shared_ptr<Qwen3Model>> loaded = LoadHfModel(path);
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
        cv_.wait(lock, [&] { return stop_ || HasWorkLocked(); });
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
      try {
        for (auto& s : admitted) {
          if (s) Prefill(std::move(s));
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

  void Prefill(std::unique_ptr<Sequence>&& s) {
    const int64_t p = static_cast<int64_t>(s->req.prompt.size()), vocab = config_.vocab_size;
    s->gen = std::make_unique<at::Generator>(at::make_generator<at::CPUGeneratorImpl>(s->req.seed));
    s->result.rid = s->req.rid;
    s->result.prompt_tokens = p;
    std::vector<int32_t> routes;
    bool done = false;
    {
      c10::InferenceMode inference;
      cache_.lengths[s->slot] = 0;
      forwarder_->Step(s->req.prompt, std::vector<int64_t>(p, s->slot), &routes);
      if (s->req.return_routed_experts) s->result.routed_experts = routes;
      const int64_t start = s->req.logprob_start_len;
      if (s->req.return_logprob && start >= 0 && !options_.deterministic) {
        // Prompt token t + 1 from row t, in chunks of 16 rows (logits are [rows, vocab]).
        for (int64_t t0 = start; t0 < p - 1; t0 += 16) {
          std::vector<int64_t> rows;
          for (int64_t t = t0; t < std::min(p - 1, t0 + 16); ++t) rows.push_back(t);
          logits_.resize(rows.size() * vocab);
          forwarder_->Logits(rows, logits_.data());
          for (size_t i = 0; i < rows.size(); ++i) {
            s->result.input_logprobs.push_back(
                TokenLogProb(&logits_[i * vocab], vocab, s->req.prompt[rows[i] + 1], LogprobTemperature(*s)));
          }
        }
      }
      if (s->req.params.max_new_tokens == 0) {
        s->result.finish_type = "length";
        done = true;
      } else {
        logits_.resize(vocab);
        forwarder_->Logits({p - 1}, logits_.data());
        done = Advance(*s, logits_.data());
      }
    }
    if (done) {
      Finish(std::move(s), "");
      return;
    }
    s->live = true;
    ++running_;
    live_.push_back(std::move(s));
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
  if (resolved.context_length <= 0) resolved.context_length = max_pos;
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
