// The transport conformance suite: the same protocol scenarios against a real
// Python worker over every transport (uds, grpc+unix, grpc+tcp).

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <arrow/builder.h>
#include <arrow/type.h>

#include "quiver/protocol/batch_codec.h"
#include "quiver/testing/python.h"
#include "quiver/testing/status_matchers.h"
#include "quiver/worker/worker.h"
#include "quiver/worker/worker_dispatcher.h"
#include "quiver/worker/worker_execution.h"

namespace quiver::worker {
namespace {

using std::chrono::milliseconds;

const std::string kUdfs = std::string(QUIVER_TESTING_UDFS) + "/conformance_udfs.py";

std::shared_ptr<arrow::RecordBatch> Texts(int rows, int first = 0) {
  arrow::StringBuilder builder;
  for (int i = 0; i < rows; ++i) EXPECT_OK(builder.Append("text " + std::to_string(first + i)));
  return arrow::RecordBatch::Make(arrow::schema({arrow::field("text", arrow::utf8())}), rows,
                                  {*builder.Finish()});
}

v1::Init MakeInit(const std::vector<std::string>& functions, uint32_t version = 1) {
  v1::Init init;
  init.set_protocol_version(version);
  init.set_data_format(v1::ARROW_IPC_STREAM);
  init.set_input_schema(*protocol::SerializeSchema(*Texts(0)->schema()));
  for (const auto& function : functions) {
    auto* udf = init.add_udfs();
    udf->set_name(function);
    udf->set_payload_format("python/ref");
    udf->set_payload(kUdfs + ":" + function);
    udf->add_argument_offsets(0);
  }
  return init;
}

class Conformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    WorkerSpec spec;
    spec.command = PythonWorkerCommand(quiver::testing::PythonForWorkers());
    spec.transport = GetParam();
    spec.batch_timeout = milliseconds(20000);
    spec.stop_grace = milliseconds(500);
    ASSERT_OK_AND_ASSIGN(dispatcher_, WorkerDispatcher::Make(spec));
    ASSERT_OK_AND_ASSIGN(worker_, dispatcher_->Acquire());
  }

  // Runs `batches` through `functions` and returns the results.
  arrow::Result<std::vector<std::shared_ptr<arrow::RecordBatch>>> Run(
      const std::vector<std::string>& functions,
      const std::vector<std::shared_ptr<arrow::RecordBatch>>& batches) {
    ARROW_ASSIGN_OR_RAISE(auto session, WorkerExecution::Start(worker_.get(), MakeInit(functions)));
    ARROW_RETURN_NOT_OK(session->WaitUntilReady());
    for (size_t i = 0; i < batches.size(); ++i) ARROW_RETURN_NOT_OK(session->Send(i, *batches[i]));
    std::vector<std::shared_ptr<arrow::RecordBatch>> results;
    for (size_t i = 0; i < batches.size(); ++i) {
      ARROW_ASSIGN_OR_RAISE(auto result, session->Receive(i, batches[i]->num_rows()));
      results.push_back(result);
    }
    ARROW_RETURN_NOT_OK(session->Finish().status());
    return results;
  }

  // Sends raw messages and returns the worker's next control message.
  arrow::Result<v1::WorkerMessage> NextControl() {
    ARROW_ASSIGN_OR_RAISE(auto reply,
                          worker_->connection().Receive(io::DeadlineIn(milliseconds(20000))));
    if (!reply.control) return arrow::Status::Invalid("expected a control message, got data");
    return *reply.control;
  }

  arrow::Status Send(const v1::EngineMessage& message) {
    return worker_->connection().SendControl(message, io::DeadlineIn(milliseconds(20000)));
  }

  void ExpectStillServes() {
    ASSERT_OK_AND_ASSIGN(auto results, Run({"identity"}, {Texts(3)}));
    EXPECT_TRUE(results[0]->column(0)->Equals(*Texts(3)->column(0)));
  }

  std::unique_ptr<WorkerDispatcher> dispatcher_;
  std::unique_ptr<Worker> worker_;
};

TEST_P(Conformance, SingleBatch) {
  ASSERT_OK_AND_ASSIGN(auto results, Run({"identity"}, {Texts(10)}));
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0]->column(0)->Equals(*Texts(10)->column(0)));
}

TEST_P(Conformance, ManyBatches) {
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  for (int i = 0; i < 50; ++i) batches.push_back(Texts(1 + i % 7, i * 10));
  ASSERT_OK_AND_ASSIGN(auto results, Run({"identity"}, batches));
  ASSERT_EQ(results.size(), batches.size());
  for (size_t i = 0; i < batches.size(); ++i) {
    EXPECT_TRUE(results[i]->column(0)->Equals(*batches[i]->column(0))) << "batch " << i;
  }
}

TEST_P(Conformance, SeveralUdfs) {
  ASSERT_OK_AND_ASSIGN(auto results, Run({"identity", "length"}, {Texts(4)}));
  ASSERT_EQ(results[0]->num_columns(), 2);
  EXPECT_EQ(results[0]->schema()->field(1)->type()->id(), arrow::Type::INT64);
  EXPECT_EQ(static_cast<const arrow::Int64Array&>(*results[0]->column(1)).Value(0), 6);
}

TEST_P(Conformance, ZeroBatches) {
  ASSERT_OK_AND_ASSIGN(auto results, Run({"identity"}, {}));
  EXPECT_TRUE(results.empty());
  ExpectStillServes();
}

TEST_P(Conformance, CancelMidStream) {
  ASSERT_OK_AND_ASSIGN(auto session,
                       WorkerExecution::Start(worker_.get(), MakeInit({"slow_identity"})));
  ASSERT_OK(session->WaitUntilReady());
  for (int i = 0; i < 10; ++i) ASSERT_OK(session->Send(i, *Texts(5)));
  ASSERT_OK(session->Receive(0, 5).status());
  session->Abort();
  EXPECT_FALSE(worker_->broken());
  session.reset();
  ExpectStillServes();
}

TEST_P(Conformance, CancelAfterFinishLeavesTheWorkerUsable) {
  ASSERT_OK(Run({"identity"}, {Texts(2)}).status());
  v1::EngineMessage cancel;
  cancel.mutable_cancel();
  // Not allowed by the protocol: the transport may refuse it, or the worker
  // answers a ProtocolError; either way it keeps serving.
  if (Send(cancel).ok() && GetParam() == "uds") {
    ASSERT_OK_AND_ASSIGN(auto reply, NextControl());
    EXPECT_TRUE(reply.has_error() && reply.error().has_protocol_error())
        << reply.ShortDebugString();
  }
  ExpectStillServes();
}

TEST_P(Conformance, UdfErrorIsAUserErrorAndTheWorkerSurvives) {
  auto result = Run({"fails"}, {Texts(3)});
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("UDF 'fails' raised RuntimeError: conformance failure"),
            std::string::npos)
      << result.status().ToString();
  EXPECT_FALSE(worker_->broken());
  ExpectStillServes();
}

TEST_P(Conformance, SecondInitIsAProtocolError) {
  v1::EngineMessage init;
  *init.mutable_init() = MakeInit({"identity"});
  ASSERT_OK(Send(init));
  ASSERT_OK_AND_ASSIGN(auto first, NextControl());
  EXPECT_TRUE(first.has_init_response());
  ASSERT_OK(Send(init));
  ASSERT_OK_AND_ASSIGN(auto second, NextControl());
  ASSERT_TRUE(second.has_error()) << second.ShortDebugString();
  EXPECT_TRUE(second.error().has_protocol_error());
}

TEST_P(Conformance, UnsupportedProtocolVersionIsAProtocolError) {
  v1::EngineMessage init;
  *init.mutable_init() = MakeInit({"identity"}, /*version=*/99);
  ASSERT_OK(Send(init));
  ASSERT_OK_AND_ASSIGN(auto reply, NextControl());
  ASSERT_TRUE(reply.has_error()) << reply.ShortDebugString();
  EXPECT_TRUE(reply.error().has_protocol_error());
  EXPECT_NE(reply.error().protocol_error().message().find("99"), std::string::npos);
}

TEST_P(Conformance, WorkerKilledMidStreamIsReportedWithItsSignal) {
  auto result = Run({"dies"}, {Texts(3), Texts(3)});
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("SIGKILL"), std::string::npos)
      << result.status().ToString();
  EXPECT_TRUE(worker_->broken());
}

TEST_P(Conformance, HeartbeatIsEchoed) {
  v1::EngineMessage heartbeat;
  heartbeat.mutable_heartbeat()->set_nonce(4242);
  ASSERT_OK(Send(heartbeat));
  ASSERT_OK_AND_ASSIGN(auto reply, NextControl());
  EXPECT_EQ(reply.heartbeat().nonce(), 4242u) << reply.ShortDebugString();
}

TEST_P(Conformance, ShutdownEndsTheWorkerCleanly) {
  v1::EngineMessage shutdown;
  shutdown.mutable_shutdown();
  ASSERT_OK(Send(shutdown));
  ASSERT_OK_AND_ASSIGN(auto reply, NextControl());
  EXPECT_TRUE(reply.has_shutdown()) << reply.ShortDebugString();
  auto status = worker_->process().WaitFor(milliseconds(10000));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->ToString(), "exited with status 0");
}

INSTANTIATE_TEST_SUITE_P(Transports, Conformance, ::testing::Values("uds", "grpc+unix", "grpc+tcp"),
                         [](const ::testing::TestParamInfo<std::string>& transport) {
                           std::string name = transport.param;
                           for (auto& c : name) c = std::isalnum(c) ? c : '_';
                           return name;
                         });

}  // namespace
}  // namespace quiver::worker
