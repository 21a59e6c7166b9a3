// Every way a run fails carries a UdfErrorDetail whose kind an embedding
// engine reads instead of the message: real Python workers, real failures.

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <arrow/builder.h>
#include <arrow/type.h>

#include "quiver/protocol/batch_codec.h"
#include "quiver/protocol/udf_error.h"
#include "quiver/testing/python.h"
#include "quiver/testing/status_matchers.h"
#include "quiver/worker/worker.h"
#include "quiver/worker/worker_dispatcher.h"
#include "quiver/worker/worker_session.h"

namespace quiver::worker {
namespace {

using std::chrono::milliseconds;

std::shared_ptr<arrow::RecordBatch> Texts() {
  arrow::StringBuilder builder;
  EXPECT_OK(builder.AppendValues({"a", "b", "c"}));
  return arrow::RecordBatch::Make(arrow::schema({arrow::field("text", arrow::utf8())}), 3,
                                  {*builder.Finish()});
}

v1::Init MakeInit(const std::string& function) {
  v1::Init init;
  init.set_protocol_version(1);
  init.set_data_format(v1::ARROW_IPC_STREAM);
  init.set_input_schema(*protocol::SerializeSchema(*Texts()->schema()));
  auto* udf = init.add_udfs();
  udf->set_name("u");
  udf->set_payload_format("python/ref");
  udf->set_payload(std::string(QUIVER_TESTING_UDFS) + "/conformance_udfs.py:" + function);
  udf->add_argument_offsets(0);
  return init;
}

class WorkerFailure : public ::testing::Test {
 protected:
  // Sends one 3-row batch to `function` and returns what receiving it as a
  // batch of `expected_rows` rows gives.
  arrow::Status RunOne(const std::string& function, int64_t expected_rows = 3,
                       milliseconds batch_timeout = milliseconds(20000)) {
    WorkerSpec spec;
    spec.command = PythonWorkerCommand(quiver::testing::PythonForWorkers());
    spec.batch_timeout = batch_timeout;
    spec.stop_grace = milliseconds(500);
    ARROW_ASSIGN_OR_RAISE(dispatcher_, WorkerDispatcher::Make(spec));
    ARROW_ASSIGN_OR_RAISE(worker_, dispatcher_->Acquire());
    ARROW_ASSIGN_OR_RAISE(auto session, WorkerSession::Start(worker_.get(), MakeInit(function)));
    ARROW_RETURN_NOT_OK(session->WaitUntilReady());
    ARROW_RETURN_NOT_OK(session->Send(0, *Texts()));
    return session->Receive(0, expected_rows).status();
  }

  std::unique_ptr<WorkerDispatcher> dispatcher_;
  std::unique_ptr<Worker> worker_;
};

TEST_F(WorkerFailure, UdfExceptionIsAUserErrorWithItsClassAndTraceback) {
  arrow::Status status = RunOne("fails");
  const UdfErrorDetail* detail = UdfErrorDetailOf(status);
  ASSERT_NE(detail, nullptr) << status.ToString();
  EXPECT_EQ(detail->kind, UdfErrorKind::kUserError);
  EXPECT_EQ(detail->udf_name, "u");
  EXPECT_EQ(detail->error_class, "RuntimeError");
  EXPECT_NE(detail->traceback.find("conformance failure"), std::string::npos) << detail->traceback;
  EXPECT_EQ(detail->worker_pid, worker_->pid());
  EXPECT_FALSE(detail->retryable());
  EXPECT_NE(status.message().find("UDF 'u' raised RuntimeError"), std::string::npos);
}

TEST_F(WorkerFailure, WrongLengthResultIsKeptApart) {
  // The Python worker checks its UDF's result length itself: a worker error.
  arrow::Status status = RunOne("short_result");
  const UdfErrorDetail* detail = UdfErrorDetailOf(status);
  ASSERT_NE(detail, nullptr) << status.ToString();
  EXPECT_EQ(detail->kind, UdfErrorKind::kWorkerError);
  EXPECT_EQ(detail->udf_name, "u");
  // A worker that does not check is caught by the engine: a wrong row count.
  status = RunOne("identity", /*expected_rows=*/4);
  detail = UdfErrorDetailOf(status);
  ASSERT_NE(detail, nullptr) << status.ToString();
  EXPECT_EQ(detail->kind, UdfErrorKind::kWrongRowCount);
  EXPECT_NE(status.message().find("wrong number of rows"), std::string::npos);
}

TEST_F(WorkerFailure, WorkerKilledBySigkillIsALostWorkerWithItsSignal) {
  arrow::Status status = RunOne("dies");
  const UdfErrorDetail* detail = UdfErrorDetailOf(status);
  ASSERT_NE(detail, nullptr) << status.ToString();
  EXPECT_EQ(detail->kind, UdfErrorKind::kWorkerLost);
  ASSERT_TRUE(detail->signal.has_value()) << detail->ToString();
  EXPECT_EQ(*detail->signal, 9);
  EXPECT_FALSE(detail->exit_status.has_value());
  EXPECT_TRUE(detail->retryable());
  EXPECT_NE(status.message().find("SIGKILL"), std::string::npos) << status.ToString();
}

TEST_F(WorkerFailure, HangingUdfIsATimeout) {
  arrow::Status status = RunOne("hangs", 3, milliseconds(500));
  const UdfErrorDetail* detail = UdfErrorDetailOf(status);
  ASSERT_NE(detail, nullptr) << status.ToString();
  EXPECT_EQ(detail->kind, UdfErrorKind::kTimeout);
  EXPECT_TRUE(detail->retryable());
  EXPECT_TRUE(worker_->broken());
}

}  // namespace
}  // namespace quiver::worker
