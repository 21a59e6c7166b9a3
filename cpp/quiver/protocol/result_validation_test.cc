#include "quiver/protocol/result_validation.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <arrow/array.h>
#include <arrow/buffer.h>
#include <arrow/json/from_string.h>
#include <arrow/type.h>

#include "quiver/protocol/batch_codec.h"
#include "quiver/testing/sample_data.h"
#include "quiver/testing/status_matchers.h"

namespace quiver::protocol {
namespace {

using ::testing::HasSubstr;

std::shared_ptr<arrow::Buffer> Offsets(const std::vector<int32_t>& offsets) {
  std::string bytes(offsets.size() * sizeof(int32_t), '\0');
  std::memcpy(bytes.data(), offsets.data(), bytes.size());
  return arrow::Buffer::FromString(std::move(bytes));
}

// A string column built from raw buffers, the way a worker in any language
// could send it: nothing checked its offsets or its bytes.
std::shared_ptr<arrow::RecordBatch> StringBatch(const std::vector<int32_t>& offsets,
                                                std::string values) {
  const int64_t rows = static_cast<int64_t>(offsets.size()) - 1;
  auto array = arrow::MakeArray(arrow::ArrayData::Make(
      arrow::utf8(), rows, {nullptr, Offsets(offsets), arrow::Buffer::FromString(values)}, 0));
  return arrow::RecordBatch::Make(arrow::schema({arrow::field("label", arrow::utf8())}), rows,
                                  {array});
}

TEST(ResultValidation, AcceptsAWellFormedBatch) {
  ASSERT_OK_AND_ASSIGN(auto sample, testing::MakeSampleBatch(3));
  EXPECT_OK(ValidateResultBatch(*sample));
  EXPECT_OK(ValidateResultBatch(*StringBatch({0, 1, 3, 6}, "abbccc")));
}

TEST(ResultValidation, RejectsNonMonotonicOffsetsThatCheapValidationAccepts) {
  // First and last offsets in range: the structural check passes.
  auto batch = StringBatch({0, 5, 2, 6}, "abbccc");
  ASSERT_OK(batch->Validate());
  arrow::Status status = ValidateResultBatch(*batch);
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("column 'label' (index 0, string)"));
  EXPECT_THAT(status.message(), HasSubstr("ffset"));
}

TEST(ResultValidation, RejectsInvalidUtf8) {
  arrow::Status status = ValidateResultBatch(*StringBatch({0, 2, 4}, "ok\xff\xfe"));
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("column 'label'"));
  EXPECT_THAT(status.message(), HasSubstr("UTF8"));
}

TEST(ResultValidation, RejectsDictionaryIndicesOutOfRange) {
  ASSERT_OK_AND_ASSIGN(auto dictionary,
                       arrow::json::ArrayFromJSONString(arrow::utf8(), R"(["a", "b"])"));
  ASSERT_OK_AND_ASSIGN(auto indices, arrow::json::ArrayFromJSONString(arrow::int8(), "[0, 1, 7]"));
  auto type = arrow::dictionary(arrow::int8(), arrow::utf8());
  auto array = std::make_shared<arrow::DictionaryArray>(type, indices, dictionary);
  auto batch = arrow::RecordBatch::Make(arrow::schema({arrow::field("city", type)}), 3, {array});
  arrow::Status status = ValidateResultBatch(*batch);
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("column 'city'"));
}

TEST(ResultValidation, RejectsAColumnShorterThanTheBatch) {
  ASSERT_OK_AND_ASSIGN(auto column, arrow::json::ArrayFromJSONString(arrow::int64(), "[1, 2]"));
  auto batch =
      arrow::RecordBatch::Make(arrow::schema({arrow::field("n", arrow::int64())}), 3, {column});
  arrow::Status status = ValidateResultBatch(*batch);
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("column 'n' (index 0, int64): holds 2 values"));
}

TEST(ResultValidation, CatchesWhatTheIpcDecoderLetsThrough) {
  // The decoder reads offsets as they come: a round trip keeps them broken.
  ASSERT_OK_AND_ASSIGN(auto body, EncodeBatchStream(*StringBatch({0, 5, 2, 6}, "abbccc")));
  std::string joined;
  for (const auto& buffer : body) joined += buffer->ToString();
  ASSERT_OK_AND_ASSIGN(auto decoded, DecodeBatchStream(arrow::Buffer::FromString(joined)));
  EXPECT_FALSE(ValidateResultBatch(*decoded).ok());
}

}  // namespace
}  // namespace quiver::protocol
