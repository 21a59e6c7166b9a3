#include "quiver/sdk/spark_session.h"

#include <zlib.h>

#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <arrow/builder.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/writer.h>

#include "quiver/protocol/batch_codec.h"
#include "quiver/sdk/counter.h"
#include "quiver/testing/status_matchers.h"

namespace quiver::sdk {
namespace {

// Keeps what the session sends; `cancel_next` makes the next look-ahead see a Cancel.
class RecordingSink : public SparkSink {
 public:
  arrow::Status SendControl(const sparkpb::UdfControlResponse& control) override {
    controls.push_back(control);
    return arrow::Status::OK();
  }
  arrow::Result<uint64_t> SendData(const arrow::RecordBatch& batch) override {
    rows.push_back(batch.num_rows());
    return 100;
  }
  bool CancelAhead() override { return std::exchange(cancel_next, false); }

  // Returns and forgets the control answers sent so far.
  std::vector<sparkpb::UdfControlResponse> Take() { return std::exchange(controls, {}); }
  // Returns the one control answer sent since the last call.
  sparkpb::UdfControlResponse One() {
    auto taken = Take();
    EXPECT_EQ(taken.size(), 1u);
    return taken.empty() ? sparkpb::UdfControlResponse() : taken.front();
  }

  std::vector<sparkpb::UdfControlResponse> controls;
  std::vector<int64_t> rows;
  bool cancel_next = false;
};

std::shared_ptr<arrow::RecordBatch> Numbers(int rows) {
  arrow::Int64Builder builder;
  for (int i = 0; i < rows; ++i) EXPECT_OK(builder.Append(i));
  return arrow::RecordBatch::Make(arrow::schema({arrow::field("n", arrow::int64())}), rows,
                                  {*builder.Finish()});
}

std::string Stream(const std::vector<std::shared_ptr<arrow::RecordBatch>>& batches) {
  auto sink = *arrow::io::BufferOutputStream::Create();
  auto writer = *arrow::ipc::MakeStreamWriter(sink, batches.front()->schema());
  for (const auto& batch : batches) EXPECT_OK(writer->WriteRecordBatch(*batch));
  EXPECT_OK(writer->Close());
  return (*sink->Finish())->ToString();
}

sparkpb::UdfControlRequest Init(const std::string& symbol) {
  sparkpb::UdfControlRequest control;
  sparkpb::Init* init = control.mutable_init();
  init->set_protocol_version(1);
  init->set_data_format(sparkpb::ARROW);
  init->mutable_udf()->set_payload(symbol);
  init->mutable_udf()->set_format("symbol");
  init->mutable_udf()->set_name("out");
  init->set_input_schema(*protocol::SerializeSchema(*Numbers(0)->schema()));
  return control;
}

sparkpb::UdfControlRequest Chunk(const std::string& data, bool last) {
  sparkpb::UdfControlRequest control;
  control.mutable_payload()->set_data(data);
  if (last) control.mutable_payload()->set_last(true);
  return control;
}

sparkpb::UdfControlRequest Finish() {
  sparkpb::UdfControlRequest control;
  control.mutable_finish();
  return control;
}

sparkpb::UdfControlRequest Cancel() {
  sparkpb::UdfControlRequest control;
  control.mutable_cancel();
  return control;
}

class SparkSessionTest : public ::testing::Test {
 protected:
  SparkSessionTest() {
    registry_
        .Scalar("identity", {AnyType()}, SameTypeAs(0), [](const Arrays& args) { return args[0]; })
        .Scalar("counts_rows", {AnyType()}, SameTypeAs(0),
                [](const Arrays& args) {
                  Counter("spark_test_rows").Add(args[0]->length());
                  return args[0];
                })
        .Scalar("fails", {AnyType()}, arrow::int64(),
                [](const Arrays&) -> arrow::Result<std::shared_ptr<arrow::Array>> {
                  throw std::domain_error("no luck");
                });
  }

  arrow::Status Send(const std::vector<std::shared_ptr<arrow::RecordBatch>>& batches) {
    const std::string bytes = Stream(batches);
    return session_.OnData({arrow::Buffer::FromString(bytes)}, bytes.size());
  }

  arrow::Status SendBytes(const std::string& bytes) {
    return session_.OnData({arrow::Buffer::FromString(bytes)}, bytes.size());
  }

  // The kind of the error of the one InitResponse sent since the last call.
  sparkpb::ExecutionError InitError() {
    const auto answer = sink_.One();
    EXPECT_TRUE(answer.has_init() && answer.init().has_error()) << answer.DebugString();
    EXPECT_FALSE(answer.init().has_data());
    return answer.init().error();
  }

  // The error of the one ErrorResponse sent since the last call.
  sparkpb::ExecutionError DataError() {
    const auto answer = sink_.One();
    EXPECT_TRUE(answer.has_error()) << answer.DebugString();
    return answer.error().error();
  }

  sparkpb::CancelResponse Cancelled() {
    EXPECT_OK(session_.OnControl(Cancel()));
    const auto answer = sink_.One();
    EXPECT_TRUE(answer.has_cancel()) << answer.DebugString();
    EXPECT_TRUE(session_.done());
    return answer.cancel();
  }

  Registry registry_;
  RecordingSink sink_;
  SparkTotals totals_;
  SparkSession session_{&registry_, &sink_, &totals_};
};

TEST_F(SparkSessionTest, InitAnswersTheResultSchemaAndEveryBatchIsAnsweredInOrder) {
  ASSERT_OK(session_.OnControl(Init("identity")));
  const auto init = sink_.One();
  ASSERT_TRUE(init.has_init() && init.init().has_data() && !init.init().has_error());
  ASSERT_OK_AND_ASSIGN(auto schema, protocol::DeserializeSchema(init.init().data()));
  EXPECT_EQ(schema->ToString(), "out: int64");
  ASSERT_OK(Send({Numbers(3)}));
  ASSERT_OK(Send({Numbers(0)}));
  ASSERT_OK(Send({Numbers(2), Numbers(5)}));  // one stream of two batches: two answers
  EXPECT_EQ(sink_.rows, (std::vector<int64_t>{3, 0, 2, 5}));
  ASSERT_OK(session_.OnControl(Finish()));
  const auto finish = sink_.One();
  ASSERT_TRUE(finish.has_finish() && !finish.finish().has_error());
  const auto& metrics = finish.finish().metrics();
  EXPECT_EQ(metrics.at("rows_in"), "10");
  EXPECT_EQ(metrics.at("rows_out"), "10");
  EXPECT_EQ(metrics.at("batches_in"), "3");
  EXPECT_EQ(metrics.at("batches_out"), "4");
  EXPECT_EQ(metrics.at("bytes_out"), "400");
  EXPECT_NE(metrics.at("bytes_in"), "0");
  EXPECT_NE(metrics.at("peak_rss_bytes"), "0");
  EXPECT_EQ(metrics.count("udf_time_ns") + metrics.count("codec_time_ns"), 2u);
  EXPECT_TRUE(session_.done());
  EXPECT_EQ(totals_.ToMetrics().at("rows_in"), "10");
}

TEST_F(SparkSessionTest, TheUdfsOwnCountersAreCounterKeysOfFinishMetrics) {
  ASSERT_OK(session_.OnControl(Init("counts_rows")));
  sink_.One();
  ASSERT_OK(Send({Numbers(3)}));
  ASSERT_OK(Send({Numbers(2), Numbers(5)}));
  ASSERT_OK(session_.OnControl(Finish()));
  const auto finish = sink_.One();
  ASSERT_TRUE(finish.has_finish() && !finish.finish().has_error());
  EXPECT_EQ(finish.finish().metrics().at("counter.spark_test_rows"), "10");
}

TEST_F(SparkSessionTest, AChunkedPayloadIsCheckedAndAnsweredAfterTheLastChunk) {
  auto init = Init("ide");
  init.mutable_init()->set_is_chunking_payload(true);
  init.mutable_init()->mutable_udf()->set_payload_size(8);
  init.mutable_init()->mutable_udf()->set_payload_crc32(
      static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>("identity"), 8)));
  ASSERT_OK(session_.OnControl(init));
  ASSERT_OK(session_.OnControl(Chunk("nt", false)));
  ASSERT_OK(session_.OnControl(Chunk("", false)));
  EXPECT_TRUE(sink_.Take().empty()) << "no InitResponse before the last chunk";
  ASSERT_OK(session_.OnControl(Chunk("ity", true)));
  const auto answer = sink_.One();
  EXPECT_TRUE(answer.has_init() && !answer.init().has_error()) << answer.DebugString();

  // The same size, other bytes: the CRC-32 does not match.
  SparkSession other(&registry_, &sink_, &totals_);
  ASSERT_OK(other.OnControl(init));
  ASSERT_OK(other.OnControl(Chunk("ntiTY", true)));
  const auto error = InitError();
  ASSERT_TRUE(error.has_protocol());
  EXPECT_NE(error.protocol().message().find("payload_crc32"), std::string::npos);
}

TEST_F(SparkSessionTest, ARefusedInitWaitsForTheLastChunkToo) {
  auto init = Init("identity");
  init.mutable_init()->set_protocol_version(99);
  init.mutable_init()->set_is_chunking_payload(true);
  ASSERT_OK(session_.OnControl(init));
  EXPECT_TRUE(sink_.Take().empty());
  ASSERT_OK(session_.OnControl(Chunk("", true)));
  const auto error = InitError();
  ASSERT_TRUE(error.has_protocol());
  EXPECT_NE(error.protocol().message().find("protocol_version 99"), std::string::npos);
  ASSERT_OK(Send({Numbers(1)}));
  EXPECT_TRUE(sink_.rows.empty()) << "no DataResponse after a failed Init";
  Cancelled();
}

TEST_F(SparkSessionTest, InitFieldsTheWorkerCannotServeAreRefusedWithTheirKind) {
  struct Case {
    std::function<void(sparkpb::Init*)> change;
    bool protocol;
    std::string words;
  };
  const std::vector<Case> cases = {
      {[](sparkpb::Init* i) { i->set_data_format(sparkpb::UDF_WORKER_DATA_FORMAT_UNSPECIFIED); },
       true, "data_format 0"},
      {[](sparkpb::Init* i) { i->clear_input_schema(); }, true, "input_schema"},
      {[](sparkpb::Init* i) { i->set_parameters("[1, 2]"); }, true, "JSON object"},
      {[](sparkpb::Init* i) { i->set_parameters("{nope"); }, true, "not UTF-8 JSON"},
      {[](sparkpb::Init* i) { i->mutable_udf()->set_format("python/ref"); }, false, "'python/ref'"},
      {[](sparkpb::Init* i) { i->mutable_udf()->set_eval_type("SCALAR_PANDAS"); }, false,
       "SCALAR_PANDAS"},
      {[](sparkpb::Init* i) {
         i->set_output_schema(
             *protocol::SerializeSchema(*arrow::schema({arrow::field("o", arrow::utf8())})));
       },
       false, "declared return type string"},
      {[](sparkpb::Init* i) { i->mutable_udf()->set_payload("hash_name"); }, false, "hash_name"},
  };
  for (const Case& c : cases) {
    auto init = Init("identity");
    c.change(init.mutable_init());
    SparkSession session(&registry_, &sink_, &totals_);
    ASSERT_OK(session.OnControl(init));
    const auto error = InitError();
    EXPECT_EQ(error.has_protocol(), c.protocol) << error.DebugString();
    const std::string message =
        error.has_protocol() ? error.protocol().message() : error.worker().message();
    EXPECT_NE(message.find(c.words), std::string::npos) << message << " lacks " << c.words;
  }
  auto accepted = Init("identity");
  accepted.mutable_init()->set_parameters(R"({"constructor_args": {}})");
  accepted.mutable_init()->mutable_udf()->set_eval_type("SCALAR_ARROW");
  accepted.mutable_init()->mutable_udf()->clear_name();
  ASSERT_OK(session_.OnControl(accepted));
  const auto answer = sink_.One();
  ASSERT_OK_AND_ASSIGN(auto schema, protocol::DeserializeSchema(answer.init().data()));
  EXPECT_EQ(schema->field(0)->name(), "identity") << "unnamed: the symbol";
}

TEST_F(SparkSessionTest, AUdfErrorIsTheOneErrorResponseAndCancelEndsTheStream) {
  ASSERT_OK(session_.OnControl(Init("fails")));
  sink_.Take();
  ASSERT_OK(Send({Numbers(3)}));
  const auto error = DataError();
  ASSERT_TRUE(error.has_user()) << error.DebugString();
  EXPECT_EQ(error.user().message(), "no luck");
  EXPECT_EQ(error.user().error_class(), "std::domain_error");
  ASSERT_OK(Send({Numbers(3)}));
  ASSERT_OK(session_.OnControl(Finish()));
  EXPECT_TRUE(sink_.Take().empty()) << "after an error: nothing until Cancel";
  const auto cancel = Cancelled();
  EXPECT_FALSE(cancel.has_error());
  EXPECT_EQ(cancel.metrics().at("batches_in"), "1");
}

TEST_F(SparkSessionTest, CancelBeforeInitOrWhileChunksArriveIsAnsweredAlone) {
  Cancelled();
  auto init = Init("identity");
  init.mutable_init()->set_is_chunking_payload(true);
  SparkSession chunking(&registry_, &sink_, &totals_);
  ASSERT_OK(chunking.OnControl(init));
  ASSERT_OK(chunking.OnControl(Chunk("x", false)));
  ASSERT_OK(chunking.OnControl(Cancel()));
  EXPECT_TRUE(sink_.One().has_cancel());
}

TEST_F(SparkSessionTest, MessagesOutOfOrderAreProtocolErrorsWhereTheProtoSays) {
  ASSERT_OK(Send({Numbers(1)}));
  EXPECT_NE(InitError().protocol().message().find("before InitResponse"), std::string::npos);

  SparkSession second(&registry_, &sink_, &totals_);
  ASSERT_OK(second.OnControl(Init("identity")));
  sink_.Take();
  ASSERT_OK(second.OnControl(Init("identity")));
  EXPECT_NE(DataError().protocol().message().find("second Init"), std::string::npos);

  SparkSession chunk(&registry_, &sink_, &totals_);
  ASSERT_OK(chunk.OnControl(Init("identity")));
  sink_.Take();
  ASSERT_OK(chunk.OnControl(Chunk("x", true)));
  EXPECT_NE(DataError().protocol().message().find("after InitResponse"), std::string::npos);

  SparkSession garbage(&registry_, &sink_, &totals_);
  ASSERT_OK(garbage.OnControl(Init("identity")));
  sink_.Take();
  const std::string bytes = "not arrow at all";
  ASSERT_OK(garbage.OnData({arrow::Buffer::FromString(bytes)}, bytes.size()));
  EXPECT_TRUE(DataError().has_protocol());

  SparkSession other_schema(&registry_, &sink_, &totals_);
  ASSERT_OK(other_schema.OnControl(Init("identity")));
  sink_.Take();
  arrow::StringBuilder builder;
  ASSERT_OK(builder.Append("a"));
  auto strings = arrow::RecordBatch::Make(arrow::schema({arrow::field("s", arrow::utf8())}), 1,
                                          {*builder.Finish()});
  const std::string stream = Stream({strings});
  ASSERT_OK(other_schema.OnData({arrow::Buffer::FromString(stream)}, stream.size()));
  EXPECT_TRUE(DataError().has_protocol());
}

TEST_F(SparkSessionTest, AHalfCloseWithoutFinishIsACancelWithAProtocolError) {
  ASSERT_OK(session_.OnControl(Init("identity")));
  sink_.Take();
  ASSERT_OK(session_.RequestsEnded());
  const auto answer = sink_.One();
  ASSERT_TRUE(answer.has_cancel() && answer.cancel().error().has_protocol());
  EXPECT_NE(answer.cancel().error().protocol().message().find("without Finish or Cancel"),
            std::string::npos);

  // After FinishResponse the stream is over: a half-close sends nothing.
  SparkSession finished(&registry_, &sink_, &totals_);
  ASSERT_OK(finished.OnControl(Init("identity")));
  ASSERT_OK(finished.OnControl(Finish()));
  sink_.Take();
  ASSERT_OK(finished.RequestsEnded());
  EXPECT_TRUE(sink_.Take().empty());
}

TEST_F(SparkSessionTest, CancelAfterFinishIsAnsweredWhenFinishWasNot) {
  ASSERT_OK(session_.OnControl(Init("identity")));
  sink_.Take();
  sink_.cancel_next = true;  // a Cancel already waits behind the Finish
  ASSERT_OK(session_.OnControl(Finish()));
  EXPECT_TRUE(sink_.Take().empty());
  EXPECT_EQ(session_.stage(), SparkStage::kFinishing);
  Cancelled();
}

TEST_F(SparkSessionTest, AStopFromInsideTheWorkerFollowsThePhase) {
  ASSERT_OK(session_.OnControl(Init("identity")));
  sink_.Take();
  ASSERT_OK(session_.Stop(kShuttingDown));
  auto answers = sink_.Take();
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(answers[0].error().error().worker().message(), kShuttingDown);
  EXPECT_TRUE(answers[1].has_cancel());

  // Before InitResponse: the WorkerError rides on CancelResponse.
  SparkSession waiting(&registry_, &sink_, &totals_);
  ASSERT_OK(waiting.Stop(kShuttingDown));
  const auto cancel = sink_.One();
  EXPECT_TRUE(cancel.has_cancel() && cancel.cancel().error().has_worker());

  // A stream that failed already gets only its terminator.
  SparkSession failed(&registry_, &sink_, &totals_);
  ASSERT_OK(failed.OnControl(Init("hash_name")));
  sink_.Take();
  ASSERT_OK(failed.Stop(kShuttingDown));
  const auto terminator = sink_.One();
  EXPECT_TRUE(terminator.has_cancel() && !terminator.cancel().has_error());
}

TEST_F(SparkSessionTest, BatchesWithACancelBehindThemAreDropped) {
  ASSERT_OK(session_.OnControl(Init("identity")));
  sink_.Take();
  ASSERT_OK(Send({Numbers(7)}));
  sink_.cancel_next = true;
  ASSERT_OK(Send({Numbers(5)}));
  EXPECT_EQ(sink_.rows, (std::vector<int64_t>{7}));
  const auto cancel = Cancelled();
  EXPECT_EQ(cancel.metrics().at("batches_in"), "2");
  EXPECT_EQ(cancel.metrics().at("rows_in"), "7");
}

}  // namespace
}  // namespace quiver::sdk
