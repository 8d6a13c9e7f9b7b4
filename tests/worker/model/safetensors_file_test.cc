#include "worker/model/safetensors_file.h"

#include <cstring>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/worker/model/test_dir.h"
#include "worker/model/safetensors_writer.h"

namespace doze {
namespace {

using ::testing::HasSubstr;

// A safetensors file: the little-endian header length, the header, then `data`.
std::string File(const std::string& header, const std::string& data) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return bytes + header + data;
}

// The raw bytes of `values`.
template <typename T>
std::string Bytes(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

TEST(SafetensorsFileTest, ParsesEachDtypeAndWidensToFloat) {
  // F32 [2]: 1.5, -2; F16 [3]: 1, -2, 2^-24 (the smallest subnormal); BF16 [2, 1]: 1, -3.
  std::string data = Bytes<float>({1.5f, -2.0f}) + Bytes<uint16_t>({0x3C00, 0xC000, 0x0001}) +
                     Bytes<uint16_t>({0x3F80, 0xC040});
  std::string header = R"({"__metadata__": {"format": "pt"},
      "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "b": {"dtype": "F16", "shape": [3], "data_offsets": [8, 14]},
      "c": {"dtype": "BF16", "shape": [2, 1], "data_offsets": [14, 18]}})";
  std::string bytes = File(header, data);
  auto file = SafetensorsFile::Parse(bytes.data(), bytes.size(), "mem");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  ASSERT_EQ((*file)->tensors().size(), 3u);

  float out[3];
  const SafetensorsTensor* a = (*file)->Find("a");
  ASSERT_NE(a, nullptr);
  ToFloat(a->view, 0, 2, out);
  EXPECT_EQ(out[0], 1.5f);
  EXPECT_EQ(out[1], -2.0f);
  const SafetensorsTensor* b = (*file)->Find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->view.dtype, DType::kF16);
  ToFloat(b->view, 0, 3, out);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -2.0f);
  EXPECT_EQ(out[2], 5.9604644775390625e-08f);
  const SafetensorsTensor* c = (*file)->Find("c");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->view.shape, (std::vector<int64_t>{2, 1}));
  ToFloat(c->view, 1, 1, out);  // offset addresses elements
  EXPECT_EQ(out[0], -3.0f);
  EXPECT_EQ((*file)->Find("d"), nullptr);
}

TEST(SafetensorsFileTest, EmptyHeaderAndEmptyTensorsAreValid) {
  std::string empty = File("{}", "");
  EXPECT_TRUE(SafetensorsFile::Parse(empty.data(), empty.size(), "mem").ok());
  std::string zero = File(R"({"z": {"dtype": "F32", "shape": [0, 4], "data_offsets": [0, 0]}})", "");
  auto file = SafetensorsFile::Parse(zero.data(), zero.size(), "mem");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->Find("z")->view.num_elements(), 0);
}

TEST(SafetensorsFileTest, WriterOutputReadsBackWithPaddedHeader) {
  ScratchDir dir;
  std::vector<TensorSpec> specs = {{"w", DType::kBF16, {3}}, {"x", DType::kF32, {1}}};
  ASSERT_TRUE(WriteSafetensorsFile(dir / "t.safetensors", specs,
                                   {Bytes<uint16_t>({0x3F80, 0x4000, 0x4040}), Bytes<float>({0.25f})})
                  .ok());
  auto file = SafetensorsFile::Open(dir / "t.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->tensors()[0].name, "w");  // file order is write order
  float out[3];
  ToFloat((*file)->Find("w")->view, 0, 3, out);
  EXPECT_EQ(out[2], 3.0f);
  ToFloat((*file)->Find("x")->view, 0, 1, out);
  EXPECT_EQ(out[0], 0.25f);
  // The reference writer pads the header with spaces so the data starts 8-byte aligned.
  auto bytes = ReadFileToString(dir / "t.safetensors");
  ASSERT_TRUE(bytes.ok());
  uint64_t header_len;
  std::memcpy(&header_len, bytes->data(), 8);
  EXPECT_EQ(header_len % 8, 0u);
  EXPECT_EQ(bytes->size(), 8 + header_len + 10);
}

TEST(SafetensorsFileTest, OpenNamesAMissingPath) {
  auto file = SafetensorsFile::Open("/nonexistent/dir/model.safetensors");
  EXPECT_TRUE(absl::IsNotFound(file.status()));
  EXPECT_THAT(file.status().message(), HasSubstr("/nonexistent/dir/model.safetensors"));
}

struct BadFile {
  const char* name;
  std::string bytes;
  const char* error;  // a fragment of the expected message
};

std::vector<BadFile> BadFiles() {
  std::string f32x2 = Bytes<float>({1, 2});
  return {
      {"Empty", "", "too short for the 8-byte header length"},
      {"HeaderLengthPastEnd", File("{}  ", "").substr(0, 8) + "{}", "runs past the end of the file"},
      {"HugeHeaderLength", std::string(8, '\xff') + "{}", "runs past the end of the file"},
      {"BadJson", File("{\"a\": ", ""), "bad JSON header"},
      {"NotAnObject", File("[1, 2]", ""), "not a JSON object"},
      {"UnknownDtype", File(R"({"t": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}})", f32x2),
       "unsupported dtype I64 for tensor t"},
      {"BeginAfterEnd", File(R"({"t": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}})", f32x2),
       "begin 8 > end 4"},
      {"Overlap",
       File(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                          "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
            f32x2),
       "overlap"},
      {"OutOfRange",
       File(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                             "b": {"dtype": "F32", "shape": [1], "data_offsets": [100, 104]}})",
            f32x2),
       "out of range"},
      {"Truncated", File(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", f32x2),
       "truncated"},
      {"SizeNotShape", File(R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", f32x2),
       "needs 3 x 4"},
      {"NegativeDim", File(R"({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", f32x2),
       "bad shape entry -2"},
      {"ShapeOverflow",
       File(R"({"a": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}})", f32x2),
       "too large"},
      {"NoOffsets", File(R"({"a": {"dtype": "F32", "shape": [2]}})", f32x2), "data_offsets"},
      {"NoShape", File(R"({"a": {"dtype": "F32", "data_offsets": [0, 8]}})", f32x2), "shape"},
      {"NoDtype", File(R"({"a": {"shape": [2], "data_offsets": [0, 8]}})", f32x2), "dtype"},
      {"EntryNotObject", File(R"({"a": 3})", f32x2), "not a JSON object"},
      // Which of the two ranges would "a" stand for? (A nested object's keys are not tensor names.)
      {"RepeatedName",
       File(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "dtype": "F32"},
                "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
            f32x2),
       "the header names 'a' twice"},
      {"BadMetadata", File(R"({"__metadata__": {"format": 1}})", ""), "__metadata__"},
  };
}

class SafetensorsBadFileTest : public testing::TestWithParam<BadFile> {};

TEST_P(SafetensorsBadFileTest, FailsWithAMessageNamingTheSourceAndProblem) {
  const BadFile& bad = GetParam();
  auto file = SafetensorsFile::Parse(bad.bytes.data(), bad.bytes.size(), "bad.safetensors");
  ASSERT_FALSE(file.ok());
  EXPECT_THAT(file.status().message(), HasSubstr("bad.safetensors: "));
  EXPECT_THAT(file.status().message(), HasSubstr(bad.error));
}

TEST_P(SafetensorsBadFileTest, OpenFailsTheSameWayOnDisk) {
  const BadFile& bad = GetParam();
  ScratchDir dir;
  dir.Write("bad.safetensors", bad.bytes);
  auto file = SafetensorsFile::Open(dir / "bad.safetensors");
  ASSERT_FALSE(file.ok());
  EXPECT_THAT(file.status().message(), HasSubstr(dir / "bad.safetensors"));
  EXPECT_THAT(file.status().message(), HasSubstr(bad.error));
}

INSTANTIATE_TEST_SUITE_P(Table, SafetensorsBadFileTest, testing::ValuesIn(BadFiles()),
                         [](const testing::TestParamInfo<BadFile>& info) { return info.param.name; });

}  // namespace
}  // namespace doze
