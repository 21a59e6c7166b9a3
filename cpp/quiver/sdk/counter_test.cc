#include "quiver/sdk/counter.h"

#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <arrow/builder.h>
#include <arrow/io/memory.h>

#include "quiver/protocol/batch_codec.h"
#include "quiver/sdk/worker_state.h"
#include "quiver/testing/status_matchers.h"

namespace quiver::sdk {
namespace {

// Keeps the control messages the state machine sends.
class RecordingSink : public MessageSink {
 public:
  arrow::Status SendControl(const v1::WorkerMessage& message) override {
    controls.push_back(message);
    return arrow::Status::OK();
  }
  arrow::Status SendData(uint64_t, const arrow::RecordBatch&) override {
    return arrow::Status::OK();
  }
  std::vector<v1::WorkerMessage> controls;
};

std::shared_ptr<arrow::RecordBatch> Numbers(int rows) {
  arrow::Int64Builder builder;
  for (int i = 0; i < rows; ++i) EXPECT_OK(builder.Append(i));
  return arrow::RecordBatch::Make(arrow::schema({arrow::field("n", arrow::int64())}), rows,
                                  {*builder.Finish()});
}

std::shared_ptr<arrow::io::InputStream> Body(const arrow::RecordBatch& batch) {
  std::string bytes;
  for (const auto& piece : *protocol::EncodeBatchStream(batch)) bytes += piece->ToString();
  return std::make_shared<arrow::io::BufferReader>(arrow::Buffer::FromString(bytes));
}

v1::EngineMessage Init(const std::string& function) {
  v1::EngineMessage message;
  v1::Init* init = message.mutable_init();
  init->set_protocol_version(1);
  init->set_data_format(v1::ARROW_IPC_STREAM);
  init->set_input_schema(*protocol::SerializeSchema(*Numbers(0)->schema()));
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

TEST(CounterTest, ValidNamesAreLettersDigitsAndUnderscores) {
  EXPECT_TRUE(IsMetricName("rows_skipped"));
  EXPECT_TRUE(IsMetricName("_x9"));
  EXPECT_FALSE(IsMetricName(""));
  EXPECT_FALSE(IsMetricName("9lives"));
  EXPECT_FALSE(IsMetricName("rows-skipped"));
  EXPECT_FALSE(IsMetricName("rows skipped"));
}

TEST(CounterTest, ABadNameFailsAtTheCallSayingWhatIsAllowed) {
  try {
    Counter("rows-skipped");
    FAIL() << "a bad name was accepted";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("'rows-skipped' is not a valid metric name"),
              std::string::npos)
        << error.what();
  }
}

TEST(CounterTest, AddsUpAndRefusesNegativesAndOverflow) {
  const auto before = CounterSnapshot();
  Counter("counter_test_total").Add(3);
  Counter("counter_test_total").Add();
  EXPECT_EQ(CountersSince(before), (std::map<std::string, uint64_t>{{"counter_test_total", 4}}));
  EXPECT_THROW(Counter("counter_test_total").Add(-1), std::invalid_argument);
  EXPECT_THROW(Counter("counter_test_total").Add(std::numeric_limits<int64_t>::max()),
               std::overflow_error);
  EXPECT_EQ(CountersSince(before).at("counter_test_total"), 4u);
}

class CounterExecutionTest : public ::testing::Test {
 protected:
  CounterExecutionTest() {
    registry_
        .Scalar("count_rows", {AnyType()}, SameTypeAs(0),
                [](const Arrays& args) {
                  Counter("counter_test_rows").Add(args[0]->length());
                  return args[0];
                })
        .Scalar("bad_counter", {AnyType()}, SameTypeAs(0), [](const Arrays& args) {
          Counter("not a name").Add(1);
          return args[0];
        });
  }

  Registry registry_;
  RecordingSink sink_;
  WorkerStateMachine machine_{&registry_, &sink_};
};

TEST_F(CounterExecutionTest, FinishReportsWhatEachCounterGrewByInThisExecution) {
  for (int run = 0; run < 2; ++run) {  // the second execution counts from 0 again
    ASSERT_OK(machine_.OnMessage(Init("count_rows")));
    ASSERT_OK(machine_.OnBatch(0, Body(*Numbers(5))));
    ASSERT_OK(machine_.OnBatch(1, Body(*Numbers(2))));
    ASSERT_OK(machine_.OnMessage(Finish()));
    ASSERT_TRUE(sink_.controls.back().has_finish_response());
    const auto& counters = sink_.controls.back().finish_response().metrics().counters();
    ASSERT_EQ(counters.size(), 1u);
    EXPECT_EQ(counters.at("counter_test_rows"), 7u);
  }
}

TEST_F(CounterExecutionTest, ABadNameInsideAUdfIsAUserErrorNamingTheUdf) {
  ASSERT_OK(machine_.OnMessage(Init("bad_counter")));
  ASSERT_OK(machine_.OnBatch(0, Body(*Numbers(3))));
  ASSERT_TRUE(sink_.controls.back().has_error());
  const v1::UserError& error = sink_.controls.back().error().user_error();
  EXPECT_EQ(error.udf_name(), "out");
  EXPECT_EQ(error.error_class(), "std::invalid_argument");
  EXPECT_NE(error.message().find("'not a name' is not a valid metric name"), std::string::npos);
}

}  // namespace
}  // namespace quiver::sdk
