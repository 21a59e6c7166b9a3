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

}  // namespace
}  // namespace quiver::cli
