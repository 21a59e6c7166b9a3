#include "quiver/cli/failure_message.h"

#include <gtest/gtest.h>

#include "quiver/protocol/udf_error.h"

namespace quiver::cli {
namespace {

TEST(FailureMessage, AddsWhatTheDetailSays) {
  const auto plain = arrow::Status::Invalid("no such file");
  EXPECT_EQ(FailureMessage(plain), "no such file");

  UdfErrorDetail detail;
  detail.kind = UdfErrorKind::kTimeout;
  const auto timeout = WithUdfError(arrow::Status::IOError("worker 1 did not answer"), detail);
  EXPECT_EQ(FailureMessage(timeout),
            "worker 1 did not answer\n(timeout: raise --batch-timeout if the UDF is only slow, "
            "or lower --batch-rows)");
  // The detail survives a message rewritten on the way up.
  const auto rewritten = timeout.WithMessage("running UDFs 'x' failed: ", timeout.message());
  ASSERT_NE(UdfErrorDetailOf(rewritten), nullptr);
  EXPECT_EQ(UdfErrorDetailOf(rewritten)->kind, UdfErrorKind::kTimeout);
}

// A worker chooses its result's field names: a byte that is not UTF-8 must not
// reach the terminal as it is.
TEST(FailureMessage, EscapesBytesThatAreNotUtf8) {
  const auto status = arrow::Status::IOError("InitResponse promised \xf9: string");
  EXPECT_EQ(FailureMessage(status), "InitResponse promised \\xf9: string");
  EXPECT_EQ(EscapeInvalidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x99\x82"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x99\x82");
  EXPECT_EQ(EscapeInvalidUtf8("\xc3"), "\\xc3");                    // truncated
  EXPECT_EQ(EscapeInvalidUtf8("\xc0\xaf"), "\\xc0\\xaf");           // overlong
  EXPECT_EQ(EscapeInvalidUtf8("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // surrogate
}

}  // namespace
}  // namespace quiver::cli
