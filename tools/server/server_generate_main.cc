// server_generate: render a prompt with the Qwen3 chat template, encode it,
// POST /generate to a running server (rollout/server or SGLang), print the
// completion and one line per generated token: index, id, log-prob, text.
//
//   server_generate --address=http://127.0.0.1:30000 --prompt="What is 2+2?"
//       --tokenizer=/models/Qwen3-0.6B --max_new_tokens=64 --temperature=0   (one line)
//   server_generate --address_file=/tmp/server.addr --prompt="..."   # the server's server.address_file
//
// --tokenizer empty: the small GSM8K tokenizer shipped in common/tokenizer/data.
// Exits 1 with one line on any error (unreachable server, HTTP error, bad reply).
#include <httplib.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "common/tokenizer/tokenizer.h"
#include "rollout/sglang_api.h"

ABSL_FLAG(std::string, address, "", "server address, http://HOST:PORT");
ABSL_FLAG(std::string, address_file, "", "file holding the address (the server's server.address_file)");
ABSL_FLAG(std::string, prompt, "What is 2+2?", "user message");
ABSL_FLAG(std::string, tokenizer, "", "tokenizer.json, or a folder with one (empty: the small GSM8K tokenizer)");
ABSL_FLAG(bool, thinking, false, "enable_thinking in the chat template");
ABSL_FLAG(int64_t, max_new_tokens, 64, "tokens to generate");
ABSL_FLAG(double, temperature, 0.0, "0 = greedy");
ABSL_FLAG(double, top_p, 1.0, "nucleus mass");
ABSL_FLAG(int64_t, top_k, -1, "-1 = off");
ABSL_FLAG(int64_t, seed, -1, "sampling_seed (-1: the server picks)");

namespace {

bool Exists(const std::string& path) {
  struct stat info;
  return ::stat(path.c_str(), &info) == 0;
}

absl::StatusOr<moerl::Tokenizer> LoadTokenizer(std::string path, const std::string& argv0) {
  if (path.empty()) {
    const std::string rel = "common/tokenizer/data/moerl-gsm8k-bpe.json";
    path = rel;
    for (const std::string& root : {std::string(std::getenv("RUNFILES_DIR") ? std::getenv("RUNFILES_DIR") : ""),
                                    argv0 + ".runfiles"}) {
      if (!root.empty() && Exists(root + "/moerl/" + rel)) path = root + "/moerl/" + rel;
    }
  } else if (Exists(path + "/tokenizer.json")) {
    path += "/tokenizer.json";
  }
  return moerl::Tokenizer::FromTokenizerJson(path);
}

absl::Status Run(const std::string& argv0) {
  std::string address = absl::GetFlag(FLAGS_address);
  if (address.empty() && !absl::GetFlag(FLAGS_address_file).empty()) {
    std::ifstream in(absl::GetFlag(FLAGS_address_file));
    std::getline(in, address);
    address = std::string(absl::StripAsciiWhitespace(address));
  }
  if (address.empty()) return absl::InvalidArgumentError("give --address=http://HOST:PORT or --address_file");
  MOERL_ASSIGN_OR_RETURN(moerl::Tokenizer tok, LoadTokenizer(absl::GetFlag(FLAGS_tokenizer), argv0));
  moerl::ChatOptions chat;
  chat.enable_thinking = absl::GetFlag(FLAGS_thinking);
  const std::vector<int32_t> ids = tok.Encode(tok.RenderChatPrompt(absl::GetFlag(FLAGS_prompt), chat));

  moerl::GenerateRequest req;
  req.input_ids = {std::vector<int64_t>(ids.begin(), ids.end())};
  moerl::SamplingParams& p = req.sampling_params[0];
  p.max_new_tokens = absl::GetFlag(FLAGS_max_new_tokens);
  p.temperature = absl::GetFlag(FLAGS_temperature);
  p.top_p = absl::GetFlag(FLAGS_top_p);
  p.top_k = absl::GetFlag(FLAGS_top_k);
  p.skip_special_tokens = false;
  for (int32_t id : tok.stop_ids()) p.stop_token_ids.push_back(id);
  if (absl::GetFlag(FLAGS_seed) >= 0) p.sampling_seed = absl::GetFlag(FLAGS_seed);
  req.return_logprob = true;

  httplib::Client client(address);
  client.set_read_timeout(3600, 0);
  httplib::Result res = client.Post("/generate", moerl::GenerateRequestToJson(req).dump(), "application/json");
  if (!res) return absl::UnavailableError(absl::StrCat("POST ", address, "/generate: ", httplib::to_string(res.error())));
  if (res->status != 200) return absl::InternalError(absl::StrCat("HTTP ", res->status, ": ", res->body));
  MOERL_ASSIGN_OR_RETURN(std::vector<moerl::GenerateResponse> outs, moerl::ParseGenerateResponses(res->body));
  const moerl::MetaInfo& m = outs[0].meta_info;
  std::vector<int32_t> out_ids;
  std::printf("prompt: %zu tokens\n", ids.size());
  if (m.output_token_logprobs) {
    for (size_t i = 0; i < m.output_token_logprobs->size(); ++i) {
      const moerl::TokenLogprob& t = (*m.output_token_logprobs)[i];
      out_ids.push_back(static_cast<int32_t>(t.token_id));
      absl::StatusOr<std::string> piece = tok.Decode({static_cast<int32_t>(t.token_id)});
      std::printf("%4zu %7lld %10.5f  %s\n", i, static_cast<long long>(t.token_id), t.logprob.value_or(0.0),
                  piece.ok() ? absl::CEscape(*piece).c_str() : "?");
    }
  }
  absl::StatusOr<std::string> text = tok.Decode(out_ids, {.skip_unknown_ids = true});
  std::printf("completion: %s\n", text.ok() ? text->c_str() : "(undecodable)");
  std::printf("finish_reason: %s, completion_tokens %lld, weight_version %s, e2e_latency %.3f s\n",
              m.finish_reason ? m.finish_reason->type.c_str() : "null", static_cast<long long>(m.completion_tokens),
              m.weight_version.c_str(), m.e2e_latency.value_or(0.0));
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const absl::Status status = Run(argv[0]);
  if (!status.ok()) {
    std::fprintf(stderr, "server_generate: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
