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
#include "quiver/worker/worker_execution.h"

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
    ARROW_ASSIGN_OR_RAISE(auto session, WorkerExecution::Start(worker_.get(), MakeInit(function)));
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

// A batch over the message limit is refused before anything is sent, on every
// transport, with its number, its size and the limit; the worker stays usable.
class OversizedBatch : public ::testing::TestWithParam<std::string> {};

TEST_P(OversizedBatch, IsRefusedBeforeSendingNamingBatchSizeAndLimit) {
  WorkerSpec spec;
  spec.command = PythonWorkerCommand(quiver::testing::PythonForWorkers());
  spec.transport = GetParam();
  spec.max_message_bytes = 4096;
  ASSERT_OK_AND_ASSIGN(auto dispatcher, WorkerDispatcher::Make(spec));
  ASSERT_OK_AND_ASSIGN(auto worker, dispatcher->Acquire());
  ASSERT_OK_AND_ASSIGN(auto session, WorkerExecution::Start(worker.get(), MakeInit("identity")));
  ASSERT_OK(session->WaitUntilReady());
  arrow::StringBuilder builder;
  ASSERT_OK(builder.AppendValues(std::vector<std::string>(3, std::string(10000, 'x'))));
  auto big = arrow::RecordBatch::Make(Texts()->schema(), 3, {*builder.Finish()});
  arrow::Status status = session->Send(0, *big);
  ASSERT_FALSE(status.ok());
  for (const char* needle :
       {"batch 0 of 3 rows", "29.", "KiB", "over the limit of 4.00 KiB", "4096 bytes"}) {
    EXPECT_NE(status.message().find(needle), std::string::npos) << needle << ": " << status;
  }
  const UdfErrorDetail* detail = UdfErrorDetailOf(status);
  ASSERT_NE(detail, nullptr) << status.ToString();
  EXPECT_EQ(detail->kind, UdfErrorKind::kBatchTooLarge);
  EXPECT_FALSE(detail->retryable());
  // Nothing went out: the same session still answers a batch within the limit.
  ASSERT_OK(session->Send(0, *Texts()));
  ASSERT_OK_AND_ASSIGN(auto result, session->Receive(0, 3));
  EXPECT_EQ(result->num_rows(), 3);
  ASSERT_OK(session->Finish().status());
  EXPECT_FALSE(worker->broken());
}

INSTANTIATE_TEST_SUITE_P(EveryTransport, OversizedBatch,
                         ::testing::Values("unix", "grpc+unix", "grpc+tcp"),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           std::string name = param.param;
                           for (char& c : name) {
                             if (c == '+') c = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace quiver::worker
