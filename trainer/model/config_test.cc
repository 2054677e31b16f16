#include "trainer/model/config.h"

#include "common/testing/shared_data.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

TEST(ModelConfig, ParsesQwen3_30B_A3B) {
  const std::string rel = "data/qwen3-configs/Qwen3-30B-A3B_config.json";
  const std::string path = SharedDataPath(rel);
  if (path.empty()) GTEST_FAIL() << MissingSharedDataMessage(rel);
  auto c = ModelConfig::FromFile(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hidden_size, 2048);
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->num_experts, 128);
  EXPECT_EQ(c->num_experts_per_tok, 8);
  EXPECT_EQ(c->rope_theta, 1e6);
  EXPECT_TRUE(c->IsMoeLayer(0));
  EXPECT_EQ(c->eos_token_ids, (std::vector<int64_t>{151645}));
}

TEST(ModelConfig, ReadsV5RopeParametersAndExpertAlias) {
  auto c = ModelConfig::FromJson(R"({"model_type":"qwen3_moe","vocab_size":10,"hidden_size":8,
      "num_hidden_layers":4,"num_attention_heads":2,"num_key_value_heads":1,"head_dim":4,
      "intermediate_size":16,"moe_intermediate_size":4,"num_local_experts":4,"num_experts_per_tok":2,
      "decoder_sparse_step":2,"mlp_only_layers":[3],"rope_parameters":{"rope_theta":500.0,"rope_type":"default"}})",
                                 "cfg");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->num_experts, 4);
  EXPECT_EQ(c->rope_theta, 500.0);
  EXPECT_FALSE(c->IsMoeLayer(0));
  EXPECT_TRUE(c->IsMoeLayer(1));
  EXPECT_FALSE(c->IsMoeLayer(3));  // in mlp_only_layers
}

TEST(ModelConfig, ErrorsNameTheKey) {
  auto missing = ModelConfig::FromJson(R"({"model_type":"qwen3","hidden_size":8})", "cfg.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(std::string(missing.status().message()).find("vocab_size"), std::string::npos);
  auto yarn = ModelConfig::FromJson(R"({"model_type":"qwen3","vocab_size":10,"hidden_size":8,
      "num_hidden_layers":1,"num_attention_heads":2,"intermediate_size":8,
      "rope_scaling":{"rope_type":"yarn","factor":4.0}})",
                                    "cfg.json");
  ASSERT_FALSE(yarn.ok());
  EXPECT_NE(std::string(yarn.status().message()).find("rope_scaling.rope_type"), std::string::npos);
  auto gqa = ModelConfig::FromJson(R"({"model_type":"qwen3","vocab_size":10,"hidden_size":8,
      "num_hidden_layers":1,"num_attention_heads":3,"num_key_value_heads":2,"head_dim":4,"intermediate_size":8})",
                                   "cfg.json");
  ASSERT_FALSE(gqa.ok());
  EXPECT_NE(std::string(gqa.status().message()).find("num_key_value_heads"), std::string::npos);
}

TEST(ModelConfig, MalformedJsonNamesTheByteAndNonObjectsTheirType) {
  auto truncated = ModelConfig::FromJson("{", "x.json");
  ASSERT_FALSE(truncated.ok());
  EXPECT_EQ(truncated.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(truncated.status().message()).find("x.json: not valid JSON at byte 2"),
            std::string::npos)
      << truncated.status();
  auto array = ModelConfig::FromJson("[1]", "x.json");
  ASSERT_FALSE(array.ok());
  EXPECT_NE(std::string(array.status().message()).find("expected a JSON object, found array"),
            std::string::npos)
      << array.status();
  auto missing = ModelConfig::FromFile("/nonexistent/config.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(missing.status().message())
                .find("cannot read model config '/nonexistent/config.json': No such file"),
            std::string::npos)
      << missing.status();
}

TEST(ModelConfig, HostileSizesAreErrorsNamingTheKey) {
  auto layers = ModelConfig::FromJson(R"({"model_type":"qwen3","vocab_size":10,"hidden_size":8,
      "num_hidden_layers":1000000000000,"num_attention_heads":2,"intermediate_size":8})",
                                      "cfg.json");
  ASSERT_FALSE(layers.ok());
  EXPECT_NE(std::string(layers.status().message()).find("num_hidden_layers"), std::string::npos)
      << layers.status();
  auto vocab = ModelConfig::FromJson(R"({"model_type":"qwen3","vocab_size":4000000000,"hidden_size":8,
      "num_hidden_layers":1,"num_attention_heads":2,"intermediate_size":8})",
                                     "cfg.json");
  ASSERT_FALSE(vocab.ok());
  EXPECT_NE(std::string(vocab.status().message()).find("vocab_size"), std::string::npos)
      << vocab.status();
  auto dense = ModelConfig::FromJson(R"({"model_type":"qwen3_moe","vocab_size":10,"hidden_size":8,
      "num_hidden_layers":2,"num_attention_heads":2,"intermediate_size":8,"num_experts":4,
      "num_experts_per_tok":2,"moe_intermediate_size":4,"mlp_only_layers":[5]})",
                                     "cfg.json");
  ASSERT_FALSE(dense.ok());
  EXPECT_NE(std::string(dense.status().message()).find("mlp_only_layers"), std::string::npos)
      << dense.status();
}

TEST(ModelConfig, ToJsonRoundTrips) {
  const std::string path = SharedDataPath("data/qwen3-configs/Qwen3-235B-A22B_config.json");
  if (path.empty()) GTEST_FAIL() << MissingSharedDataMessage("data/qwen3-configs/Qwen3-235B-A22B_config.json");
  auto c = ModelConfig::FromFile(path);
  ASSERT_TRUE(c.ok()) << c.status();
  auto again = ModelConfig::FromJson(c->ToJson(), "round trip");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->num_hidden_layers, 94);
  EXPECT_EQ(again->moe_intermediate_size, c->moe_intermediate_size);
}

TEST(ModelConfig, TinyDefaultConfigIsValid) {
  auto c = ModelConfig::FromFile("trainer/model/configs/tiny-moe.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->HasMoeLayers());
}

}  // namespace
}  // namespace moerl
