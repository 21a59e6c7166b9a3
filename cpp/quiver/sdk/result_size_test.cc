#include "quiver/sdk/result_size.h"

#include <memory>
#include <string>

#include <arrow/array/builder_binary.h>
#include <arrow/record_batch.h>
#include <arrow/type.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "quiver/sdk/errors.h"

namespace quiver::sdk {
namespace {

std::shared_ptr<arrow::RecordBatch> Strings(int rows, const std::string& value) {
  arrow::StringBuilder builder;
  for (int i = 0; i < rows; ++i) EXPECT_TRUE(builder.Append(value).ok());
  auto array = builder.Finish().ValueOrDie();
  return arrow::RecordBatch::Make(arrow::schema({arrow::field("loud", arrow::utf8())}), rows,
                                  {array});
}

TEST(ResultSize, AResultThatFitsPasses) {
  EXPECT_TRUE(CheckResultSize(*Strings(10, "abc"), "shout").ok());
}

TEST(ResultSize, ALargerResultIsAWorkerErrorWithItsSizeAndTheLimit) {
  // The real limit is 2 GiB; a small one stands for it so that the test holds no 2 GiB.
  const arrow::Status status = CheckResultSize(*Strings(1000, std::string(100, 'x')), "shout",
                                               /*limit=*/4096);
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), testing::HasSubstr("the result of one batch ('loud')"));
  EXPECT_THAT(status.message(), testing::HasSubstr("over the limit of 0.00 GiB (4,096 bytes)"));
  EXPECT_THAT(status.message(), testing::HasSubstr("smaller batches"));
  const v1::Error error = ErrorOf(status);
  ASSERT_TRUE(error.has_worker_error());
  EXPECT_EQ(error.worker_error().udf_name(), "shout");
}

}  // namespace
}  // namespace quiver::sdk
