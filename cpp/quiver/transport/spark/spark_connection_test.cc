// The spark transport with real Python workers in Spark's dialect, driven the way UdfOperator
// drives any worker (WorkerDispatcher, WorkerExecution): several UDFs joined per batch, a payload
// large enough to travel in chunks, a user error, and the worker's reuse after it.

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include <arrow/array.h>
#include <arrow/builder.h>
#include <arrow/type.h>

#include "quiver/protocol/batch_codec.h"
#include "quiver/protocol/udf_error.h"
#include "quiver/testing/python.h"
#include "quiver/testing/status_matchers.h"
#include "quiver/worker/worker.h"
#include "quiver/worker/worker_dispatcher.h"
#include "quiver/worker/worker_execution.h"

namespace quiver::transport::spark {
namespace {

using worker::WorkerExecution;

std::shared_ptr<arrow::RecordBatch> Rows(int64_t first, int64_t count) {
  arrow::Int64Builder ids;
  arrow::StringBuilder names;
  for (int64_t i = first; i < first + count; ++i) {
    EXPECT_OK(ids.Append(i));
    EXPECT_OK(names.Append("n" + std::to_string(i)));
  }
  auto schema =
      arrow::schema({arrow::field("id", arrow::int64()), arrow::field("name", arrow::utf8())});
  return arrow::RecordBatch::Make(schema, count, {*ids.Finish(), *names.Finish()});
}

std::string TypeOf(const std::shared_ptr<arrow::DataType>& type) {
  return *protocol::SerializeSchema(arrow::Schema({arrow::field("r", type)}));
}

v1::UdfDefinition* AddUdf(v1::Init* init, const std::string& name, const std::string& function,
                          int column, const std::shared_ptr<arrow::DataType>& type) {
  auto* udf = init->add_udfs();
  udf->set_name(name);
  udf->set_payload_format("python/ref");
  udf->set_payload("quiver.conformance_udfs:" + function);
  udf->set_eval_type(v1::SCALAR_ARROW);
  udf->add_argument_offsets(column);
  udf->set_return_type(TypeOf(type));
  return udf;
}

v1::Init BaseInit() {
  v1::Init init;
  init.set_protocol_version(1);
  init.set_data_format(v1::ARROW_IPC_STREAM);
  init.set_input_schema(*protocol::SerializeSchema(*Rows(0, 1)->schema()));
  init.set_session_time_zone("UTC");
  return init;
}

class SparkConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    worker::WorkerSpec spec;
    spec.command = worker::PythonWorkerCommand(quiver::testing::PythonForWorkers());
    spec.command.insert(spec.command.end(), {"--dialect", "spark"});
    spec.transport = "spark";
    spec.batch_timeout = std::chrono::milliseconds(30000);
    ASSERT_OK_AND_ASSIGN(dispatcher_, worker::WorkerDispatcher::Make(spec));
    ASSERT_OK_AND_ASSIGN(worker_, dispatcher_->Acquire());
  }

  void TearDown() override {
    if (worker_ != nullptr) dispatcher_->Release(std::move(worker_));
  }

  std::unique_ptr<worker::WorkerDispatcher> dispatcher_;
  std::unique_ptr<worker::Worker> worker_;
};

TEST_F(SparkConnectionTest, TwoUdfsAnswerEachBatchAsOneJoinedResult) {
  v1::Init init = BaseInit();
  AddUdf(&init, "next", "add_one", 0, arrow::int64());
  AddUdf(&init, "loud", "upper", 1, arrow::utf8());
  ASSERT_OK_AND_ASSIGN(auto session, WorkerExecution::Start(worker_.get(), init));
  ASSERT_OK(session->WaitUntilReady());
  EXPECT_EQ(session->result_schema()->ToString(), "next: int64\nloud: string");
  for (uint64_t sequence = 0; sequence < 3; ++sequence) {
    ASSERT_OK(session->Send(sequence, *Rows(10 * sequence, 5)));
  }
  for (uint64_t sequence = 0; sequence < 3; ++sequence) {
    ASSERT_OK_AND_ASSIGN(auto result, session->Receive(sequence, 5));
    const auto& next = static_cast<const arrow::Int64Array&>(*result->column(0));
    const auto& loud = static_cast<const arrow::StringArray&>(*result->column(1));
    EXPECT_EQ(next.Value(4), static_cast<int64_t>(10 * sequence + 5));
    EXPECT_EQ(loud.GetString(4), "N" + std::to_string(10 * sequence + 4));
  }
  ASSERT_OK_AND_ASSIGN(auto metrics, session->Finish());
  EXPECT_EQ(metrics.rows_in(), 15u);
  EXPECT_EQ(metrics.batches(), 3u);
}

TEST_F(SparkConnectionTest, AUserErrorNamesTheUdfAndTheWorkerServesTheNextExecution) {
  v1::Init init = BaseInit();
  AddUdf(&init, "fine", "identity", 0, arrow::int64());
  AddUdf(&init, "bad", "raise_error", 0, arrow::int64());
  {
    ASSERT_OK_AND_ASSIGN(auto session, WorkerExecution::Start(worker_.get(), init));
    ASSERT_OK(session->WaitUntilReady());
    ASSERT_OK(session->Send(0, *Rows(0, 3)));
    auto result = session->Receive(0, 3);
    ASSERT_FALSE(result.ok());
    const UdfErrorDetail* detail = UdfErrorDetailOf(result.status());
    ASSERT_NE(detail, nullptr);
    EXPECT_EQ(detail->kind, UdfErrorKind::kUserError);
    EXPECT_EQ(detail->udf_name, "bad");
    EXPECT_EQ(detail->error_class, "ValueError");
    session->Abort();
  }
  EXPECT_FALSE(worker_->broken());
  v1::Init next = BaseInit();
  AddUdf(&next, "again", "identity", 0, arrow::int64());
  ASSERT_OK_AND_ASSIGN(auto session, WorkerExecution::Start(worker_.get(), next));
  ASSERT_OK(session->WaitUntilReady());
  ASSERT_OK(session->Send(0, *Rows(0, 2)));
  ASSERT_OK(session->Receive(0, 2).status());
  ASSERT_OK(session->Finish().status());
}

// A function pickled with 3 MiB of captured data: quiver's engine cuts its payload into
// PayloadChunks, the transport reassembles it and sends it in Spark's chunks with its size and
// CRC-32, which the worker checks.
TEST_F(SparkConnectionTest, AChunkedPayloadArrivesWhole) {
  const std::string path = ::testing::TempDir() + "/spark_big_udf.pickle";
  const std::string script =
      "import cloudpickle, sys\n"
      "big = b'q' * (3 << 20)\n"
      "def sized(values):\n"
      "    import pyarrow as pa\n"
      "    return pa.array([len(big)] * len(values), pa.int64())\n"
      "open(sys.argv[1], 'wb').write(cloudpickle.dumps(sized))\n";
  const std::string script_path = ::testing::TempDir() + "/spark_big_udf.py";
  std::ofstream(script_path) << script;
  const std::string command = quiver::testing::PythonForWorkers() + " " + script_path + " " + path;
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  std::ifstream file(path, std::ios::binary);
  std::stringstream payload;
  payload << file.rdbuf();
  ASSERT_GT(payload.str().size(), worker::kPayloadChunkBytes * 2);

  v1::Init init = BaseInit();
  auto* udf = AddUdf(&init, "size", "unused", 0, arrow::int64());
  udf->set_payload_format("python/cloudpickle");
  udf->set_payload(payload.str());
  ASSERT_OK_AND_ASSIGN(auto session, WorkerExecution::Start(worker_.get(), init));
  ASSERT_OK(session->WaitUntilReady());
  ASSERT_OK(session->Send(0, *Rows(0, 2)));
  ASSERT_OK_AND_ASSIGN(auto result, session->Receive(0, 2));
  EXPECT_EQ(static_cast<const arrow::Int64Array&>(*result->column(0)).Value(1), 3 << 20);
  ASSERT_OK(session->Finish().status());
}

}  // namespace
}  // namespace quiver::transport::spark
