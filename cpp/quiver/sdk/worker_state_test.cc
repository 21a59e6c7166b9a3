#include "quiver/sdk/worker_state.h"

#include <stdexcept>
#include <vector>

#include <gtest/gtest.h>

#include <arrow/builder.h>
#include <arrow/io/memory.h>

#include "quiver/protocol/batch_codec.h"
#include "quiver/testing/status_matchers.h"

namespace quiver::sdk {
namespace {

// Keeps what the state machine sends.
class RecordingSink : public MessageSink {
 public:
  arrow::Status SendControl(const v1::WorkerMessage& message) override {
    controls.push_back(message);
    return arrow::Status::OK();
  }
  arrow::Status SendData(uint64_t sequence, const arrow::RecordBatch& batch) override {
    results.emplace_back(sequence, batch.num_rows());
    return arrow::Status::OK();
  }
  // Returns and forgets the last control message.
  v1::WorkerMessage Last() {
    EXPECT_FALSE(controls.empty());
    v1::WorkerMessage last = controls.empty() ? v1::WorkerMessage() : controls.back();
    controls.clear();
    return last;
  }

  std::vector<v1::WorkerMessage> controls;
  std::vector<std::pair<uint64_t, int64_t>> results;
};

std::shared_ptr<arrow::RecordBatch> Numbers(int rows) {
  arrow::Int64Builder builder;
  for (int i = 0; i < rows; ++i) EXPECT_OK(builder.Append(i));
  return arrow::RecordBatch::Make(arrow::schema({arrow::field("n", arrow::int64())}), rows,
                                  {*builder.Finish()});
}

std::shared_ptr<arrow::io::InputStream> Body(const arrow::RecordBatch& batch) {
  auto pieces = *protocol::EncodeBatchStream(batch);
  std::string bytes;
  for (const auto& piece : pieces) bytes += piece->ToString();
  return std::make_shared<arrow::io::BufferReader>(arrow::Buffer::FromString(bytes));
}

v1::EngineMessage Init(const std::string& function, uint32_t chunks = 0) {
  v1::EngineMessage message;
  v1::Init* init = message.mutable_init();
  init->set_protocol_version(1);
  init->set_data_format(v1::ARROW_IPC_STREAM);
  init->set_input_schema(*protocol::SerializeSchema(*Numbers(0)->schema()));
  init->set_payload_chunk_count(chunks);
  v1::UdfDefinition* udf = init->add_udfs();
  udf->set_name("out");
  udf->set_payload_format("symbol");
  udf->set_payload(function);
  udf->add_argument_offsets(0);
  return message;
}

v1::EngineMessage Finish() {
  v1::EngineMessage message;
  message.mutable_finish();
  return message;
}

class WorkerStateTest : public ::testing::Test {
 protected:
  WorkerStateTest() {
    registry_
        .Scalar(
            "same", {AnyType()}, SameTypeAs(0), [](const Arrays& args) { return args[0]; },
            [this] {
              ++setups_;
              return arrow::Status::OK();
            },
            [this] {
              ++teardowns_;
              return arrow::Status::OK();
            })
        .Scalar("throws", {AnyType()}, arrow::int64(),
                [](const Arrays&) -> arrow::Result<std::shared_ptr<arrow::Array>> {
                  throw std::out_of_range("index 7");
                })
        .Scalar("invalid", {AnyType()}, arrow::int64(),
                [](const Arrays&) -> arrow::Result<std::shared_ptr<arrow::Array>> {
                  return arrow::Status::Invalid("bad input");
                })
        .Scalar("short", {AnyType()}, SameTypeAs(0),
                [](const Arrays& args) { return args[0]->Slice(1); })
        .Scalar("wrong_type", {AnyType()}, arrow::utf8(),
                [](const Arrays& args) { return args[0]; });
  }

  Registry registry_;
  RecordingSink sink_;
  WorkerStateMachine machine_{&registry_, &sink_};
  int setups_ = 0;
  int teardowns_ = 0;
};

TEST_F(WorkerStateTest, RunsAnExecutionAndReportsItsMetrics) {
  ASSERT_OK(machine_.OnMessage(Init("same")));
  EXPECT_TRUE(sink_.Last().has_init_response());
  EXPECT_EQ(machine_.state(), WorkerState::kRunning);
  EXPECT_EQ(setups_, 1);
  ASSERT_OK(machine_.OnBatch(4, Body(*Numbers(5))));
  ASSERT_OK(machine_.OnBatch(9, Body(*Numbers(2))));
  EXPECT_EQ(sink_.results, (std::vector<std::pair<uint64_t, int64_t>>{{4, 5}, {9, 2}}));
  ASSERT_OK(machine_.OnMessage(Finish()));
  const v1::WorkerMessage done = sink_.Last();
  ASSERT_TRUE(done.has_finish_response());
  EXPECT_EQ(done.finish_response().metrics().batches(), 2u);
  EXPECT_EQ(done.finish_response().metrics().rows_in(), 7u);
  EXPECT_EQ(machine_.state(), WorkerState::kIdle);
  EXPECT_EQ(teardowns_, 1);
}

TEST_F(WorkerStateTest, AnExceptionIsAUserErrorNamingItsType) {
  ASSERT_OK(machine_.OnMessage(Init("throws")));
  sink_.Last();
  ASSERT_OK(machine_.OnBatch(3, Body(*Numbers(5))));
  const v1::Error error = sink_.Last().error();
  EXPECT_TRUE(error.has_sequence());
  EXPECT_EQ(error.sequence(), 3u);
  EXPECT_EQ(error.user_error().udf_name(), "out");
  EXPECT_EQ(error.user_error().error_class(), "std::out_of_range");
  EXPECT_EQ(error.user_error().message(), "index 7");
  EXPECT_EQ(machine_.state(), WorkerState::kFailed);
  // Failed: Data ignored, at most one Error, Finish answered.
  ASSERT_OK(machine_.OnBatch(4, Body(*Numbers(5))));
  ASSERT_OK(machine_.OnMessage(Init("same")));
  EXPECT_TRUE(sink_.controls.empty());
  ASSERT_OK(machine_.OnMessage(Finish()));
  EXPECT_TRUE(sink_.Last().has_finish_response());
  EXPECT_EQ(machine_.state(), WorkerState::kIdle);
}

TEST_F(WorkerStateTest, AReturnedStatusIsAUserError) {
  ASSERT_OK(machine_.OnMessage(Init("invalid")));
  sink_.Last();
  ASSERT_OK(machine_.OnBatch(0, Body(*Numbers(1))));
  const v1::Error error = sink_.Last().error();
  EXPECT_EQ(error.user_error().error_class(), "arrow::StatusCode::Invalid");
  EXPECT_EQ(error.user_error().message(), "bad input");
}

TEST_F(WorkerStateTest, AWrongLengthOrTypeIsAWorkerError) {
  for (const char* function : {"short", "wrong_type"}) {
    ASSERT_OK(machine_.OnMessage(Init(function)));
    sink_.Last();
    ASSERT_OK(machine_.OnBatch(0, Body(*Numbers(3))));
    const v1::Error error = sink_.Last().error();
    EXPECT_TRUE(error.has_worker_error()) << function;
    EXPECT_EQ(error.worker_error().udf_name(), "out");
    v1::EngineMessage cancel;
    cancel.mutable_cancel();
    ASSERT_OK(machine_.OnMessage(cancel));
    EXPECT_TRUE(sink_.Last().has_cancel_response());
  }
}

TEST_F(WorkerStateTest, MessagesOutOfPlaceAreProtocolErrors) {
  ASSERT_OK(machine_.OnBatch(0, Body(*Numbers(1))));  // idle: answered, stays idle
  EXPECT_TRUE(sink_.Last().error().has_protocol_error());
  EXPECT_EQ(machine_.state(), WorkerState::kIdle);
  ASSERT_OK(machine_.OnMessage(Finish()));
  EXPECT_TRUE(sink_.Last().error().has_protocol_error());
  ASSERT_OK(machine_.OnMessage(Init("same")));
  sink_.Last();
  ASSERT_OK(machine_.OnMessage(Init("same")));  // a second Init fails the execution
  EXPECT_TRUE(sink_.Last().error().has_protocol_error());
  EXPECT_EQ(machine_.state(), WorkerState::kFailed);
  EXPECT_EQ(teardowns_, 1);  // the failed execution's teardown ran
}

TEST_F(WorkerStateTest, HeartbeatsAreAnsweredInEveryState) {
  v1::EngineMessage heartbeat;
  heartbeat.mutable_heartbeat()->set_nonce(77);
  ASSERT_OK(machine_.OnMessage(heartbeat));
  EXPECT_EQ(sink_.Last().heartbeat().nonce(), 77u);
  ASSERT_OK(machine_.OnMessage(Init("throws")));
  sink_.Last();
  ASSERT_OK(machine_.OnMessage(heartbeat));
  EXPECT_EQ(sink_.Last().heartbeat().nonce(), 77u);
  ASSERT_OK(machine_.OnBatch(0, Body(*Numbers(1))));
  sink_.Last();
  ASSERT_OK(machine_.OnMessage(heartbeat));
  EXPECT_EQ(sink_.Last().heartbeat().nonce(), 77u);
}

TEST_F(WorkerStateTest, PayloadChunksCompleteTheFunctionName) {
  ASSERT_OK(machine_.OnMessage(Init("sa", /*chunks=*/2)));
  EXPECT_TRUE(sink_.controls.empty());  // InitResponse only after the last chunk
  v1::EngineMessage chunk;
  chunk.mutable_payload_chunk()->set_data("m");
  ASSERT_OK(machine_.OnMessage(chunk));
  ASSERT_OK(machine_.OnBatch(0, Body(*Numbers(1))));  // Data before the last chunk
  EXPECT_TRUE(sink_.Last().error().has_protocol_error());
  ASSERT_OK(machine_.OnMessage(Finish()));
  sink_.Last();
  ASSERT_OK(machine_.OnMessage(Init("sa", /*chunks=*/1)));
  chunk.mutable_payload_chunk()->set_data("me");
  ASSERT_OK(machine_.OnMessage(chunk));
  EXPECT_TRUE(sink_.Last().has_init_response());
}

TEST_F(WorkerStateTest, InitProblemsAreNamed) {
  v1::EngineMessage init = Init("same");
  init.mutable_init()->mutable_udfs(0)->set_eval_type(v1::SCALAR_PANDAS);
  ASSERT_OK(machine_.OnMessage(init));
  EXPECT_NE(sink_.Last().error().worker_error().message().find("eval_type 2"), std::string::npos);
  ASSERT_OK(machine_.OnMessage(Finish()));
  sink_.Last();
  init = Init("same");
  init.mutable_init()->set_protocol_version(2);
  ASSERT_OK(machine_.OnMessage(init));
  EXPECT_TRUE(sink_.Last().error().has_protocol_error());
}

}  // namespace
}  // namespace quiver::sdk
