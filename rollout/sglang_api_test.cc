// The JSON shapes of SGLang's /generate and /update_weights_from_disk bodies
// (docs/server.md), field by field, both directions.
#include "rollout/sglang_api.h"

#include <gtest/gtest.h>

#include "nlohmann/json.hpp"

namespace moerl {
namespace {

using json = nlohmann::json;

// The spec's example request (AReaL's shape).
constexpr char kSpecRequest[] = R"({
  "input_ids": [151644, 872, 198, 3838, 374, 220, 17, 10, 17, 30, 151645, 198, 151644, 77091, 198],
  "sampling_params": {
    "max_new_tokens": 1024, "temperature": 1.0, "top_p": 1.0, "top_k": -1,
    "stop_token_ids": [151645, 151643], "skip_special_tokens": false, "ignore_eos": false,
    "frequency_penalty": 0.0
  },
  "return_logprob": true, "logprob_start_len": -1, "top_logprobs_num": 0, "stream": false,
  "image_data": null
})";

// The spec's example response.
constexpr char kSpecResponse[] = R"({
  "text": "2+2 equals 4.",
  "output_ids": [17, 10, 17, 16819, 220, 19, 13, 151645],
  "meta_info": {
    "id": "5f0ce1",
    "finish_reason": {"type": "stop", "matched": 151645},
    "prompt_tokens": 15, "weight_version": "default", "total_retractions": 0,
    "completion_tokens": 8, "cached_tokens": 0,
    "input_token_logprobs": [[null, 198, null]],
    "output_token_logprobs": [[-0.0012, 17, null], [-0.31, 10, null], [-0.0004, 17, null],
                              [-0.02, 16819, null], [-0.001, 220, null], [-0.0001, 19, null],
                              [-0.05, 13, null], [-0.0002, 151645, null]],
    "e2e_latency": 0.412,
    "spec_verify_ct": 0
  }
})";

TEST(GenerateRequest, ParsesTheSpecExample) {
  absl::StatusOr<GenerateRequest> r = ParseGenerateRequest(std::string(kSpecRequest));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->batched);
  ASSERT_EQ(r->input_ids.size(), 1u);
  EXPECT_EQ(r->input_ids[0].size(), 15u);
  EXPECT_EQ(r->input_ids[0][0], 151644);
  const SamplingParams& p = r->ParamsFor(0);
  EXPECT_EQ(p.max_new_tokens, 1024);
  EXPECT_EQ(p.temperature, 1.0);
  EXPECT_EQ(p.top_p, 1.0);
  EXPECT_EQ(p.top_k, -1);
  EXPECT_EQ(p.stop_token_ids, (std::vector<int64_t>{151645, 151643}));
  EXPECT_FALSE(p.skip_special_tokens);
  EXPECT_FALSE(p.ignore_eos);
  EXPECT_TRUE(r->return_logprob);
  EXPECT_EQ(r->logprob_start_len, -1);
  EXPECT_TRUE(r->rid.empty());
}

TEST(GenerateRequest, RoundTripsSingleAndBatch) {
  GenerateRequest single;
  single.input_ids = {{1, 2, 3}};
  single.sampling_params[0].max_new_tokens = 0;
  single.sampling_params[0].temperature = 0;
  single.sampling_params[0].min_new_tokens = 2;
  single.sampling_params[0].sampling_seed = 42;
  single.return_logprob = true;
  single.logprob_start_len = 0;
  single.return_routed_experts = true;
  single.rid = {"abc"};
  json j = GenerateRequestToJson(single);
  EXPECT_TRUE(j["input_ids"].is_array() && j["input_ids"][0].is_number_integer());
  EXPECT_EQ(j["rid"], "abc");
  EXPECT_EQ(j["sampling_params"]["max_new_tokens"], 0);
  absl::StatusOr<GenerateRequest> back = ParseGenerateRequest(j);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->input_ids, single.input_ids);
  EXPECT_EQ(back->sampling_params, single.sampling_params);
  EXPECT_EQ(back->return_logprob, true);
  EXPECT_EQ(back->logprob_start_len, 0);
  EXPECT_EQ(back->return_routed_experts, true);
  EXPECT_EQ(back->rid, single.rid);

  GenerateRequest batch;
  batch.batched = true;
  batch.input_ids = {{1, 2}, {3}};
  batch.sampling_params = {SamplingParams{}, SamplingParams{}};
  batch.sampling_params[1].top_k = 5;
  batch.rid = {"a", "b"};
  j = GenerateRequestToJson(batch);
  EXPECT_TRUE(j["input_ids"][0].is_array());
  EXPECT_TRUE(j["sampling_params"].is_array());
  back = ParseGenerateRequest(j);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->batched);
  EXPECT_EQ(back->input_ids, batch.input_ids);
  EXPECT_EQ(back->ParamsFor(1).top_k, 5);
  EXPECT_EQ(back->rid, batch.rid);
}

TEST(GenerateRequest, OneRidForABatchGetsIndexSuffixes) {
  absl::StatusOr<GenerateRequest> r = ParseGenerateRequest(std::string(R"({"input_ids": [[1], [2]], "rid": "x"})"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->rid, (std::vector<std::string>{"x_0", "x_1"}));
}

void ExpectError(const std::string& body, const std::string& needle) {
  absl::StatusOr<GenerateRequest> r = ParseGenerateRequest(body);
  ASSERT_FALSE(r.ok()) << body;
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
}

TEST(GenerateRequest, ErrorsNameTheField) {
  ExpectError("{not json", "not valid JSON");
  ExpectError("[1, 2]", "JSON object");
  ExpectError(R"({"input_ids": [1], "bogus": 1})", "unknown field bogus");
  ExpectError(R"({"input_ids": [1], "sampling_params": {"tempreature": 1}})", "sampling_params.tempreature");
  ExpectError(R"({"input_ids": [1], "sampling_params": {"top_p": 1.5}})", "sampling_params.top_p");
  ExpectError(R"({"input_ids": [1], "sampling_params": {"max_new_tokens": -1}})", "sampling_params.max_new_tokens");
  ExpectError(R"({"input_ids": [1], "sampling_params": {"temperature": "hot"}})", "sampling_params.temperature");
  ExpectError(R"({"input_ids": [1], "sampling_params": {"top_k": -2}})", "sampling_params.top_k");
  ExpectError(R"({"input_ids": [1, "a"]})", "input_ids[1]");
  ExpectError(R"({"input_ids": []})", "input_ids");
  ExpectError(R"({"input_ids": [[1], []]})", "input_ids[1] is empty");
  ExpectError(R"({"sampling_params": {}})", "input_ids is missing");
  ExpectError(R"({"text": "hi"})", "text is not supported");
  ExpectError(R"({"input_ids": [1], "stream": true})", "stream");
  ExpectError(R"({"input_ids": [1], "return_logprob": 1})", "return_logprob");
  ExpectError(R"({"input_ids": [1, 2], "logprob_start_len": 2})", "logprob_start_len");
  ExpectError(R"({"input_ids": [[1], [2]], "sampling_params": [{}]})", "sampling_params has 1 entries");
  ExpectError(R"({"input_ids": [1], "sampling_params": {"n": 2}})", "sampling_params.n");
  ExpectError(R"({"input_ids": [1], "sampling_params": {"frequency_penalty": 0.5}})",
              "sampling_params.frequency_penalty");
  ExpectError(R"({"input_ids": [1], "rid": 3})", "rid");
  ExpectError(R"({"input_ids": [1], "image_data": ["data:image/png;base64,AAAA"]})", "image_data");
  ExpectError(R"({"input_ids": [1], "image_data": "x.png"})", "image_data");
  ExpectError(R"({"input_ids": [1], "lora_path": "default_lora-v1"})", "lora_path");
}

// AReaL's SGLangBackend sends ModelRequest.image_data, which defaults to [].
TEST(GenerateRequest, EmptyImageDataMeansNoImages) {
  for (const char* body : {R"({"input_ids": [1], "image_data": null})", R"({"input_ids": [1], "image_data": []})",
                           R"({"input_ids": [[1], [2]], "image_data": [[], null]})"}) {
    absl::StatusOr<GenerateRequest> r = ParseGenerateRequest(std::string(body));
    EXPECT_TRUE(r.ok()) << body << ": " << r.status();
  }
}

TEST(GenerateResponse, ParsesTheSpecExampleAndIgnoresUnknownKeys) {
  absl::StatusOr<std::vector<GenerateResponse>> rs = ParseGenerateResponses(kSpecResponse);
  ASSERT_TRUE(rs.ok()) << rs.status();
  ASSERT_EQ(rs->size(), 1u);
  const GenerateResponse& r = (*rs)[0];
  EXPECT_EQ(*r.text, "2+2 equals 4.");
  EXPECT_EQ(r.output_ids->size(), 8u);
  const MetaInfo& m = r.meta_info;
  EXPECT_EQ(m.id, "5f0ce1");
  EXPECT_EQ(m.finish_reason->type, "stop");
  EXPECT_EQ(*m.finish_reason->matched, 151645);
  EXPECT_EQ(m.prompt_tokens, 15);
  EXPECT_EQ(m.completion_tokens, 8);
  EXPECT_EQ(m.weight_version, "default");
  ASSERT_EQ(m.input_token_logprobs->size(), 1u);
  EXPECT_FALSE((*m.input_token_logprobs)[0].logprob.has_value());
  EXPECT_EQ((*m.input_token_logprobs)[0].token_id, 198);
  ASSERT_EQ(m.output_token_logprobs->size(), 8u);
  EXPECT_DOUBLE_EQ(*(*m.output_token_logprobs)[1].logprob, -0.31);
  EXPECT_EQ((*m.output_token_logprobs)[7].token_id, 151645);
  EXPECT_DOUBLE_EQ(*m.e2e_latency, 0.412);
}

TEST(GenerateResponse, SerializesSGLangShapes) {
  GenerateResponse r;
  r.output_ids = std::vector<int64_t>{5, 6};
  r.meta_info.id = "q";
  r.meta_info.finish_reason = FinishReason{"length", std::nullopt, 2, ""};
  r.meta_info.prompt_tokens = 3;
  r.meta_info.completion_tokens = 2;
  r.meta_info.weight_version = "4";
  r.meta_info.output_token_logprobs = std::vector<TokenLogprob>{{-0.5, 5}, {-1.25, 6}};
  r.meta_info.input_token_logprobs = std::vector<TokenLogprob>{{std::nullopt, 1}, {-2.0, 2}, {-3.0, 3}};
  r.meta_info.e2e_latency = 0.5;
  json j = GenerateResponseToJson(r);
  EXPECT_FALSE(j.contains("text"));
  EXPECT_EQ(j["output_ids"], json({5, 6}));
  const json& m = j["meta_info"];
  EXPECT_EQ(m["id"], "q");
  EXPECT_EQ(m["finish_reason"], json({{"type", "length"}, {"length", 2}}));
  EXPECT_EQ(m["prompt_tokens"], 3);
  EXPECT_EQ(m["completion_tokens"], 2);
  EXPECT_EQ(m["cached_tokens"], 0);
  EXPECT_EQ(m["total_retractions"], 0);
  EXPECT_EQ(m["weight_version"], "4");  // a string, as SGLang's
  EXPECT_EQ(m["output_token_logprobs"], json::parse("[[-0.5, 5, null], [-1.25, 6, null]]"));
  EXPECT_EQ(m["input_token_logprobs"], json::parse("[[null, 1, null], [-2.0, 2, null], [-3.0, 3, null]]"));
  EXPECT_EQ(m["e2e_latency"], 0.5);
  EXPECT_FALSE(m.contains("routed_experts"));

  absl::StatusOr<std::vector<GenerateResponse>> back = ParseGenerateResponses(GenerateResponsesToJson({r, r}, true).dump());
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), 2u);
  EXPECT_EQ(*(*back)[1].meta_info.output_token_logprobs, *r.meta_info.output_token_logprobs);
  EXPECT_EQ(*(*back)[1].meta_info.input_token_logprobs, *r.meta_info.input_token_logprobs);
  EXPECT_EQ(*(*back)[1].meta_info.finish_reason->length, 2);

  r.meta_info.finish_reason = FinishReason{"stop", 7, std::nullopt, ""};
  EXPECT_EQ(GenerateResponseToJson(r)["meta_info"]["finish_reason"], json({{"type", "stop"}, {"matched", 7}}));
  r.meta_info.finish_reason = FinishReason{"abort", std::nullopt, std::nullopt, "paused"};
  EXPECT_EQ(GenerateResponseToJson(r)["meta_info"]["finish_reason"], json({{"type", "abort"}, {"message", "paused"}}));
}

TEST(GenerateResponse, AbortBeforePrefillHasNoOutputs) {
  absl::StatusOr<std::vector<GenerateResponse>> rs = ParseGenerateResponses(
      R"({"text":"","meta_info":{"id":"z","finish_reason":{"type":"abort","message":"Abort before prefill"},"prompt_tokens":0,"completion_tokens":0}})");
  ASSERT_TRUE(rs.ok()) << rs.status();
  const GenerateResponse& r = (*rs)[0];
  EXPECT_FALSE(r.output_ids.has_value());
  EXPECT_FALSE(r.meta_info.output_token_logprobs.has_value());
  EXPECT_EQ(r.meta_info.finish_reason->type, "abort");
  EXPECT_EQ(r.meta_info.finish_reason->message, "Abort before prefill");
}

TEST(GenerateResponse, WrongTypesAreErrors) {
  absl::StatusOr<std::vector<GenerateResponse>> rs =
      ParseGenerateResponses(R"({"meta_info":{"output_token_logprobs":[["x", 1, null]]}})");
  ASSERT_FALSE(rs.ok());
  EXPECT_NE(rs.status().message().find("meta_info.output_token_logprobs[0][0]"), std::string::npos)
      << rs.status().message();
  rs = ParseGenerateResponses(R"([{"meta_info":{}}, {"output_ids": 3, "meta_info":{}}])");
  ASSERT_FALSE(rs.ok());
  EXPECT_NE(rs.status().message().find("response [1]: output_ids"), std::string::npos) << rs.status().message();
}

TEST(UpdateWeightsFromDisk, RequestAndResponseRoundTrip) {
  absl::StatusOr<UpdateWeightsFromDiskRequest> r = ParseUpdateWeightsFromDiskRequest(
      R"({"model_path": "/ckpt/actor/step_100", "abort_all_requests": true, "weight_version": "100"})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->model_path, "/ckpt/actor/step_100");
  EXPECT_TRUE(r->abort_all_requests);
  EXPECT_EQ(*r->weight_version, "100");
  absl::StatusOr<UpdateWeightsFromDiskRequest> back =
      ParseUpdateWeightsFromDiskRequest(UpdateWeightsFromDiskRequestToJson(*r).dump());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->model_path, r->model_path);
  EXPECT_EQ(*back->weight_version, "100");

  EXPECT_FALSE(ParseUpdateWeightsFromDiskRequest(R"({"abort_all_requests": true})").ok());
  absl::StatusOr<UpdateWeightsFromDiskRequest> bad = ParseUpdateWeightsFromDiskRequest(R"({"model_path": "/x", "nope": 1})");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("unknown field nope"), std::string::npos);

  UpdateWeightsFromDiskResponse resp{true, "Succeeded to update model weights.", 0};
  json j = UpdateWeightsFromDiskResponseToJson(resp);
  EXPECT_EQ(j["success"], true);
  absl::StatusOr<UpdateWeightsFromDiskResponse> rb = ParseUpdateWeightsFromDiskResponse(j.dump());
  ASSERT_TRUE(rb.ok()) << rb.status();
  EXPECT_TRUE(rb->success);
  EXPECT_EQ(rb->message, resp.message);
}

TEST(AbortRequest, NeedsRidOrAbortAll) {
  EXPECT_TRUE(ParseAbortRequest(R"({"rid": "a"})").ok());
  EXPECT_TRUE(ParseAbortRequest(R"({"abort_all": true})").ok());
  EXPECT_FALSE(ParseAbortRequest(R"({})").ok());
  absl::StatusOr<AbortRequest> r = ParseAbortRequest(AbortRequestToJson({"q7", false}).dump());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->rid, "q7");
}

TEST(RoutedExperts, Base64Int32LittleEndianRoundTrip) {
  RoutedExperts e{2, 3, {0, 1, 2, 3, 70000, -1}};
  std::string b64 = EncodeRoutedExperts(e);
  EXPECT_EQ(EncodeRoutedExperts({1, 1, {1}}), "AQAAAA==");  // bytes 01 00 00 00
  absl::StatusOr<RoutedExperts> back = DecodeRoutedExperts(b64, 3);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->rows, 2);
  EXPECT_EQ(back->ids, e.ids);
  EXPECT_FALSE(DecodeRoutedExperts(b64, 4).ok());
  EXPECT_FALSE(DecodeRoutedExperts("!!", 1).ok());
}

}  // namespace
}  // namespace moerl
