// The example C++ worker driven by quiver's own engine: the WorkerDispatcher
// starts it as it starts any worker, over uds and over gRPC, and WorkerExecution
// runs executions on it, checking every result as in production.

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <arrow/builder.h>
#include <arrow/type.h>

#include "quiver/protocol/batch_codec.h"
#include "quiver/testing/status_matchers.h"
#include "quiver/worker/worker.h"
#include "quiver/worker/worker_dispatcher.h"
#include "quiver/worker/worker_execution.h"

namespace quiver::worker {
namespace {

using std::chrono::milliseconds;

std::shared_ptr<arrow::RecordBatch> Rows(int rows, int first = 0) {
  arrow::StringBuilder texts;
  arrow::Int64Builder numbers;
  for (int i = 0; i < rows; ++i) {
    EXPECT_OK(texts.Append("text " + std::to_string(first + i)));
    EXPECT_OK(numbers.Append(first + i));
  }
  auto schema =
      arrow::schema({arrow::field("text", arrow::utf8()), arrow::field("n", arrow::int64())});
  return arrow::RecordBatch::Make(schema, rows, {*texts.Finish(), *numbers.Finish()});
}

v1::Init MakeInit(const std::vector<std::pair<std::string, int>>& functions) {
  v1::Init init;
  init.set_protocol_version(1);
  init.set_data_format(v1::ARROW_IPC_STREAM);
  init.set_input_schema(*protocol::SerializeSchema(*Rows(0)->schema()));
  for (const auto& [function, column] : functions) {
    auto* udf = init.add_udfs();
    udf->set_name(function + "_" + std::to_string(column));
    udf->set_payload_format("symbol");
    udf->set_payload(function);
    udf->add_argument_offsets(column);
  }
  return init;
}

class ExampleWorker : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    WorkerSpec spec;
    spec.command = {QUIVER_EXAMPLE_UDF_WORKER};
    spec.transport = GetParam();
    spec.batch_timeout = milliseconds(20000);
    spec.stop_grace = milliseconds(2000);
    ASSERT_OK_AND_ASSIGN(dispatcher_, WorkerDispatcher::Make(spec));
  }

  std::unique_ptr<WorkerDispatcher> dispatcher_;
};

TEST_P(ExampleWorker, RunsExecutionsOneAfterAnother) {
  ASSERT_OK_AND_ASSIGN(auto worker, dispatcher_->Acquire());
  for (int round = 0; round < 2; ++round) {
    ASSERT_OK_AND_ASSIGN(
        auto session, WorkerExecution::Start(
                          worker.get(), MakeInit({{"identity", 0}, {"upper", 0}, {"add_one", 1}})));
    ASSERT_OK(session->WaitUntilReady());
    constexpr int kBatches = 20;
    for (int i = 0; i < kBatches; ++i) ASSERT_OK(session->Send(i * 2, *Rows(1 + i % 5, i)));
    for (int i = 0; i < kBatches; ++i) {
      ASSERT_OK_AND_ASSIGN(auto result, session->Receive(i * 2, 1 + i % 5));
      const auto& upper = static_cast<const arrow::StringArray&>(*result->column(1));
      EXPECT_EQ(upper.GetString(0), "TEXT " + std::to_string(i));
      EXPECT_EQ(static_cast<const arrow::Int64Array&>(*result->column(2)).Value(0), i + 1);
    }
    ASSERT_OK_AND_ASSIGN(auto metrics, session->Finish());
    EXPECT_EQ(metrics.batches(), static_cast<uint64_t>(kBatches));
  }
  dispatcher_->Release(std::move(worker));
  EXPECT_EQ(dispatcher_->workers_started(), 1);
}

TEST_P(ExampleWorker, AUdfErrorNamesTheUdfAndTheWorkerIsReused) {
  ASSERT_OK_AND_ASSIGN(auto worker, dispatcher_->Acquire());
  {
    ASSERT_OK_AND_ASSIGN(auto session,
                         WorkerExecution::Start(worker.get(), MakeInit({{"raise_error", 1}})));
    ASSERT_OK(session->WaitUntilReady());
    ASSERT_OK(session->Send(0, *Rows(3)));
    auto result = session->Receive(0, 3);
    ASSERT_FALSE(result.ok());
    EXPECT_NE(result.status().message().find("raise_error_1"), std::string::npos)
        << result.status().ToString();
    EXPECT_NE(result.status().message().find("std::domain_error"), std::string::npos)
        << result.status().ToString();
    session->Abort();
  }
  dispatcher_->Release(std::move(worker));
  ASSERT_OK_AND_ASSIGN(worker, dispatcher_->Acquire());
  ASSERT_OK_AND_ASSIGN(auto session,
                       WorkerExecution::Start(worker.get(), MakeInit({{"identity", 0}})));
  ASSERT_OK(session->WaitUntilReady());
  ASSERT_OK(session->Send(0, *Rows(2)));
  ASSERT_OK(session->Receive(0, 2).status());
  ASSERT_OK(session->Finish().status());
  dispatcher_->Release(std::move(worker));
  EXPECT_EQ(dispatcher_->workers_started(), 1);
}

TEST_P(ExampleWorker, AnUnknownFunctionFailsAtInit) {
  ASSERT_OK_AND_ASSIGN(auto worker, dispatcher_->Acquire());
  ASSERT_OK_AND_ASSIGN(auto session,
                       WorkerExecution::Start(worker.get(), MakeInit({{"no_such_udf", 0}})));
  const arrow::Status ready = session->WaitUntilReady();
  ASSERT_FALSE(ready.ok());
  EXPECT_NE(ready.message().find("no_such_udf"), std::string::npos) << ready.ToString();
  session->Abort();
  session.reset();
  dispatcher_->Release(std::move(worker));
}

INSTANTIATE_TEST_SUITE_P(Transports, ExampleWorker,
                         ::testing::Values("uds", "grpc+unix", "grpc+tcp"),
                         [](const ::testing::TestParamInfo<std::string>& transport) {
                           std::string name = transport.param;
                           for (auto& c : name) c = (c == '+') ? '_' : c;
                           return name;
                         });

}  // namespace
}  // namespace quiver::worker
