#include "common/safetensors/safetensors.h"

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "common/safetensors/checkpoint_dir.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

std::string TmpPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/" + name;
}

std::string Image(const std::string& header_json, const std::string& buffer) {
  std::string out(8, '\0');
  uint64_t n = header_json.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header_json + buffer;
}

absl::Status ParseImage(const std::string& image) {
  return ParseSafetensorsHeader(
             {reinterpret_cast<const uint8_t*>(image.data()), image.size()}, "img")
      .status();
}

absl::Span<const uint8_t> AsBytes(const std::vector<float>& v) {
  return {reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(float)};
}

TEST(Safetensors, WriteThenReadGivesSameBytesShapesAndMetadata) {
  std::vector<float> a = {1, 2, 3, 4, 5, 6};
  std::vector<uint8_t> b = {7, 8, 9};
  const std::string path = TmpPath("rt.safetensors");
  ASSERT_TRUE(WriteSafetensors(path,
                               {{"b", Dtype::kU8, {3}, {b.data(), b.size()}},
                                {"a", Dtype::kF32, {2, 3}, AsBytes(a)}},
                               {{"format", "pt"}})
                  .ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  const TensorInfo* ta = (*file)->Find("a");
  ASSERT_NE(ta, nullptr);
  EXPECT_EQ(ta->shape, (std::vector<int64_t>{2, 3}));
  auto bytes = (*file)->Bytes(*ta);
  ASSERT_EQ(bytes.size(), 24u);
  EXPECT_EQ(std::memcmp(bytes.data(), a.data(), 24), 0);
  // Header padded to 8 and F32 placed first: the F32 data is 4-aligned.
  EXPECT_EQ(ta->begin, 0u);
  EXPECT_EQ((*file)->Bytes(*(*file)->Find("b"))[2], 9);
}

TEST(Safetensors, ScalarAndEmptyTensorsAreAccepted) {
  EXPECT_TRUE(ParseImage(Image(R"({"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]},)"
                               R"("z":{"dtype":"F32","shape":[0,4],"data_offsets":[8,8]}})",
                               std::string(8, '\0')))
                  .ok());
}

TEST(Safetensors, RejectsMalformedHeadersWithAReason) {
  struct Case {
    std::string image;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"abc", "shorter than the 8-byte"},
      {Image("{}", "").substr(0, 8) + "{", "runs past the end"},
      {Image("[1]", ""), "does not start with '{'"},
      {Image("{\"a\":", ""), "not a valid JSON object"},
      {Image(R"({"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", "abcd"), "F33"},
      {Image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", "abcd"), "needs 8"},
      {Image(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
             R"("b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}})",
             "abc"),
       "gap or overlap"},
      {Image(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})", "ab"), "gap or overlap"},
      {Image(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", "ab"), "holds 2"},
      {Image(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
             R"("a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
             "ab"),
       "duplicate"},
      {Image(R"({"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}})", "a"), "non-negative"},
      {Image(R"({"__metadata__":{"x":1}})", ""), "not a string"},
  };
  for (const Case& c : cases) {
    absl::Status s = ParseImage(c.image);
    EXPECT_FALSE(s.ok()) << c.needle;
    EXPECT_NE(std::string(s.message()).find(c.needle), std::string::npos)
        << "wanted \"" << c.needle << "\" in: " << s.message();
  }
  std::string huge = Image("{}", "");
  huge[5] = 1;  // N = 2^40
  EXPECT_NE(std::string(ParseImage(huge).message()).find("exceeds the limit"), std::string::npos);
}

TEST(Safetensors, ReadsUnalignedDataAfterAnOddLengthHeader) {
  const std::string header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}} )";  // odd
  float v = 3.5f;
  std::string buf(reinterpret_cast<const char*>(&v), 4);
  const std::string path = TmpPath("odd.safetensors");
  std::ofstream(path, std::ios::binary) << Image(header, buf);
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  float got = 0;
  std::memcpy(&got, (*file)->Bytes(*(*file)->Find("a")).data(), 4);
  EXPECT_EQ(got, 3.5f);
}

TEST(Safetensors, OpenOfAMissingFileIsNotFound) {
  EXPECT_EQ(SafetensorsFile::Open(TmpPath("nope.safetensors")).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(Safetensors, WriterRejectsByteCountMismatchAndDuplicates) {
  std::vector<float> a = {1, 2};
  EXPECT_FALSE(WriteSafetensors(TmpPath("x.safetensors"), {{"a", Dtype::kF32, {3}, AsBytes(a)}}, {}).ok());
  EXPECT_FALSE(WriteSafetensors(TmpPath("x.safetensors"),
                                {{"a", Dtype::kF32, {2}, AsBytes(a)}, {"a", Dtype::kF32, {2}, AsBytes(a)}},
                                {})
                   .ok());
}

TEST(CheckpointDir, ReadsTransformersShardedCheckpointThroughItsIndex) {
  auto ckpt = CheckpointDir::Open("trainer/model/testdata/moe");
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  auto ref = (*ckpt)->Get("model.layers.2.mlp.experts.7.down_proj.weight");
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_EQ(ref->info->shape, (std::vector<int64_t>{64, 32}));
  EXPECT_EQ(ref->info->dtype, Dtype::kF32);
  EXPECT_EQ((*ckpt)->Get("no.such.tensor").status().code(), absl::StatusCode::kNotFound);
}

TEST(CheckpointDir, ShardedWriteReadsBackIdentically) {
  std::vector<float> a(100, 1.5f), b(50, -2.0f), c(10, 0.25f);
  const std::string dir = TmpPath("sharded");
  ASSERT_TRUE(WriteCheckpointDir(dir,
                                 {{"a", Dtype::kF32, {100}, AsBytes(a)},
                                  {"b", Dtype::kF32, {50}, AsBytes(b)},
                                  {"c", Dtype::kF32, {10}, AsBytes(c)}},
                                 /*max_shard_bytes=*/450)
                  .ok());
  auto ckpt = CheckpointDir::Open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ((*ckpt)->Names(), (std::vector<std::string>{"a", "b", "c"}));
  auto rb = (*ckpt)->Get("b");
  ASSERT_TRUE(rb.ok());
  EXPECT_NE(rb->file->find("model-00002-of-00002"), std::string::npos);
  EXPECT_EQ(std::memcmp(rb->bytes.data(), b.data(), b.size() * 4), 0);
}

TEST(CheckpointDir, IndexNamingAMissingTensorIsAnError) {
  const std::string dir = TmpPath("badindex");
  std::vector<float> a = {1};
  ASSERT_TRUE(WriteCheckpointDir(dir, {{"a", Dtype::kF32, {1}, AsBytes(a)}}, 1 << 20).ok());
  std::ofstream(dir + "/model.safetensors.index.json")
      << R"({"weight_map": {"a": "model.safetensors", "ghost": "model.safetensors"}})";
  auto ckpt = CheckpointDir::Open(dir);
  ASSERT_FALSE(ckpt.ok());
  EXPECT_NE(std::string(ckpt.status().message()).find("ghost"), std::string::npos);
}

// A [2, 3, 4] tensor holding 0..23: slices along each dim read exactly the
// slice's elements (and count them); out-of-range slices and short buffers
// are errors naming the file and the tensor's byte range.
TEST(CopyTensorSlice, ReadsOnlyTheSliceAlongAnyDim) {
  std::vector<float> v(24);
  for (int i = 0; i < 24; ++i) v[i] = static_cast<float>(i);
  TensorInfo info{"t", Dtype::kF32, {2, 3, 4}, 16, 16 + 96};
  auto slice = [&](int dim, int64_t start, int64_t length, std::vector<float>* out) {
    return CopyTensorSlice(info, AsBytes(v), "f.safetensors", dim, start, length,
                           {reinterpret_cast<uint8_t*>(out->data()), out->size() * sizeof(float)});
  };
  std::vector<float> rows(12);
  auto n = slice(0, 1, 1, &rows);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 48u);
  EXPECT_EQ(rows, std::vector<float>({12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23}));
  std::vector<float> middle(8);
  n = slice(1, 1, 1, &middle);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 32u);
  EXPECT_EQ(middle, std::vector<float>({4, 5, 6, 7, 16, 17, 18, 19}));
  std::vector<float> columns(12);
  n = slice(2, 2, 2, &columns);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(columns, std::vector<float>({2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23}));

  absl::Status past = slice(1, 2, 2, &rows).status();
  EXPECT_EQ(past.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(past.message()).find("f.safetensors: tensor \"t\" (buffer bytes 16..112)"),
            std::string::npos)
      << past;
  EXPECT_NE(std::string(past.message()).find("[2, 4) along dim 1"), std::string::npos) << past;
  std::vector<float> short_v(20);
  absl::Status short_bytes = CopyTensorSlice(info, AsBytes(short_v), "f.safetensors", 0, 0, 1,
                                             {reinterpret_cast<uint8_t*>(rows.data()), 48})
                                 .status();
  EXPECT_EQ(short_bytes.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(short_bytes.message()).find("holds 80 bytes"), std::string::npos) << short_bytes;
}

}  // namespace
}  // namespace moerl
