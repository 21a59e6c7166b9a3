// Which engine thread reads a worker's replies, and that every guarantee holds
// on either: with one batch in flight the thread that waits for its answer
// reads it (no hand-off between engine threads); with several in flight, or a
// batch large enough to fill the socket, the execution's receiving thread reads
// beside the sending. Real Python workers over a Unix socket, through a
// registered "watched" transport that records the thread of each read.

#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include <arrow/builder.h>
#include <arrow/type.h>

#include "quiver/protocol/batch_codec.h"
#include "quiver/protocol/udf_error.h"
#include "quiver/testing/python.h"
#include "quiver/testing/status_matchers.h"
#include "quiver/transport/registry.h"
#include "quiver/worker/worker.h"
#include "quiver/worker/worker_dispatcher.h"
#include "quiver/worker/worker_execution.h"
#include "quiver/worker/wrapped_unix_transport_testing.h"

namespace quiver::worker {
namespace {

using std::chrono::milliseconds;

// What the watched connections saw and how they behave, for the current test.
struct Watch {
  std::mutex mutex;
  // The thread that read each result batch, in order.
  std::vector<std::thread::id> result_readers;
  // Whether Receive says it keeps its deadline (the uds one does).
  bool keeps_deadline = true;
  // Added to the sequence number of every result: a worker answering out of turn.
  uint64_t sequence_shift = 0;

  void Reset() {
    std::lock_guard<std::mutex> lock(mutex);
    result_readers.clear();
    keeps_deadline = true;
    sequence_shift = 0;
  }
  std::vector<std::thread::id> Readers() {
    std::lock_guard<std::mutex> lock(mutex);
    return result_readers;
  }
};
Watch watch;

class WatchedConnection : public transport::Connection {
 public:
  explicit WatchedConnection(std::unique_ptr<transport::Connection> inner)
      : inner_(std::move(inner)) {}
  arrow::Status SendControl(const v1::EngineMessage& message, io::Deadline deadline) override {
    return inner_->SendControl(message, deadline);
  }
  arrow::Status SendBatch(uint64_t sequence, const arrow::RecordBatch& batch,
                          io::Deadline deadline) override {
    return inner_->SendBatch(sequence, batch, deadline);
  }
  arrow::Result<transport::WorkerReply> Receive(io::Deadline deadline) override {
    auto reply = inner_->Receive(deadline);
    if (reply.ok() && reply->batch != nullptr) {
      std::lock_guard<std::mutex> lock(watch.mutex);
      watch.result_readers.push_back(std::this_thread::get_id());
      reply->sequence += watch.sequence_shift;
    }
    return reply;
  }
  void Shutdown() override { inner_->Shutdown(); }
  bool ReceiveKeepsDeadline() const override {
    std::lock_guard<std::mutex> lock(watch.mutex);
    return watch.keeps_deadline && inner_->ReceiveKeepsDeadline();
  }
  std::string endpoint() const override { return "watched:" + inner_->endpoint(); }

 private:
  std::unique_ptr<transport::Connection> inner_;
};

const transport::TransportRegistration kWatched(
    {"watched"}, std::make_shared<testing::WrappedUnixTransport>(
                     [](std::unique_ptr<transport::Connection> inner) {
                       return std::make_unique<WatchedConnection>(std::move(inner));
                     }));

std::shared_ptr<arrow::Schema> TextSchema() {
  return arrow::schema({arrow::field("text", arrow::utf8())});
}

// A batch of `rows` texts, each `width` characters of the letter of its row.
std::shared_ptr<arrow::RecordBatch> Texts(int rows, int width = 1) {
  arrow::StringBuilder builder;
  for (int row = 0; row < rows; ++row) {
    EXPECT_OK(builder.Append(std::string(width, static_cast<char>('a' + row % 26))));
  }
  return arrow::RecordBatch::Make(TextSchema(), rows, {*builder.Finish()});
}

class WorkerExecutionReading : public ::testing::Test {
 protected:
  void SetUp() override { watch.Reset(); }

  // Starts an execution of conformance_udfs.py:`function` on a watched worker.
  arrow::Status Start(const std::string& function,
                      milliseconds batch_timeout = milliseconds(20000)) {
    WorkerSpec spec;
    spec.command = PythonWorkerCommand(quiver::testing::PythonForWorkers());
    spec.transport = "watched";
    spec.batch_timeout = batch_timeout;
    spec.stop_grace = milliseconds(500);
    ARROW_ASSIGN_OR_RAISE(dispatcher_, WorkerDispatcher::Make(spec));
    ARROW_ASSIGN_OR_RAISE(worker_, dispatcher_->Acquire());
    v1::Init init;
    init.set_protocol_version(1);
    init.set_data_format(v1::ARROW_IPC_STREAM);
    ARROW_ASSIGN_OR_RAISE(std::string schema, protocol::SerializeSchema(*TextSchema()));
    init.set_input_schema(std::move(schema));
    auto* udf = init.add_udfs();
    udf->set_name("u");
    udf->set_payload_format("python/ref");
    udf->set_payload(std::string(QUIVER_TESTING_UDFS) + "/conformance_udfs.py:" + function);
    udf->add_argument_offsets(0);
    ARROW_ASSIGN_OR_RAISE(execution_, WorkerExecution::Start(worker_.get(), init));
    return execution_->WaitUntilReady();
  }

  // Sends `batch` as `sequence` and checks that its answer is the batch itself.
  void RoundTrip(uint64_t sequence, const arrow::RecordBatch& batch) {
    ASSERT_OK(execution_->Send(sequence, batch));
    ASSERT_OK_AND_ASSIGN(auto result, execution_->Receive(sequence, batch.num_rows()));
    EXPECT_TRUE(result->column(0)->Equals(*batch.column(0))) << "batch " << sequence;
  }

  std::unique_ptr<WorkerDispatcher> dispatcher_;
  std::unique_ptr<Worker> worker_;
  std::unique_ptr<WorkerExecution> execution_;
};

TEST_F(WorkerExecutionReading, OneBatchInFlightIsReadByTheThreadThatWaitsForIt) {
  ASSERT_OK(Start("identity"));
  for (uint64_t sequence = 0; sequence < 5; ++sequence) RoundTrip(sequence, *Texts(3));
  ASSERT_OK(execution_->Finish().status());
  EXPECT_FALSE(worker_->broken());
  const auto readers = watch.Readers();
  ASSERT_EQ(readers.size(), 5u);
  for (const auto& reader : readers) EXPECT_EQ(reader, std::this_thread::get_id());
}

TEST_F(WorkerExecutionReading, SeveralInFlightAreReadBesideTheSendingThenOneIsReadByTheWaiter) {
  ASSERT_OK(Start("identity"));
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  for (int i = 0; i < 4; ++i) batches.push_back(Texts(i + 1));
  for (uint64_t sequence = 0; sequence < 4; ++sequence) {
    ASSERT_OK(execution_->Send(sequence, *batches[sequence]));
  }
  for (uint64_t sequence = 0; sequence < 4; ++sequence) {
    ASSERT_OK_AND_ASSIGN(auto result, execution_->Receive(sequence, batches[sequence]->num_rows()));
    EXPECT_TRUE(result->column(0)->Equals(*batches[sequence]->column(0))) << sequence;
  }
  // Every answer read: the next lone batch is read by its waiter again.
  RoundTrip(4, *Texts(2));
  ASSERT_OK(execution_->Finish().status());
  EXPECT_FALSE(worker_->broken());
  const auto readers = watch.Readers();
  ASSERT_EQ(readers.size(), 5u);
  // Once the second batch was sent, the receiving thread read the answers due.
  for (size_t i = 1; i < 4; ++i) EXPECT_NE(readers[i], std::this_thread::get_id()) << i;
  EXPECT_EQ(readers[4], std::this_thread::get_id());
}

TEST_F(WorkerExecutionReading, ALoneBatchThatMayFillTheSocketIsReadBesideTheSending) {
  ASSERT_OK(Start("identity"));
  auto large = Texts(64, 2048);  // 128 KiB of values
  RoundTrip(0, *large);
  RoundTrip(1, *Texts(3));
  // A row of it is sent alone: what its slice uses counts, not the buffers whole.
  RoundTrip(2, *large->Slice(5, 1));
  ASSERT_OK(execution_->Finish().status());
  const auto readers = watch.Readers();
  ASSERT_EQ(readers.size(), 3u);
  EXPECT_NE(readers[0], std::this_thread::get_id());
  EXPECT_EQ(readers[1], std::this_thread::get_id());
  EXPECT_EQ(readers[2], std::this_thread::get_id());
}

TEST_F(WorkerExecutionReading, AnAnswerOutOfTurnReadByTheWaiterIsAProtocolViolation) {
  ASSERT_OK(Start("identity"));
  watch.sequence_shift = 7;
  ASSERT_OK(execution_->Send(0, *Texts(3)));
  arrow::Status status = execution_->Receive(0, 3).status();
  const UdfErrorDetail* detail = UdfErrorDetailOf(status);
  ASSERT_NE(detail, nullptr) << status.ToString();
  EXPECT_EQ(detail->kind, UdfErrorKind::kProtocolViolation);
  EXPECT_NE(status.message().find("answered batch 7 when the answer to batch 0 was due"),
            std::string::npos)
      << status.ToString();
  EXPECT_TRUE(worker_->broken());
  EXPECT_EQ(watch.Readers().at(0), std::this_thread::get_id());
}

TEST_F(WorkerExecutionReading, AUdfErrorReadByTheWaiterLeavesTheWorkerUsable) {
  ASSERT_OK(Start("fails"));
  ASSERT_OK(execution_->Send(0, *Texts(3)));
  arrow::Status status = execution_->Receive(0, 3).status();
  const UdfErrorDetail* detail = UdfErrorDetailOf(status);
  ASSERT_NE(detail, nullptr) << status.ToString();
  EXPECT_EQ(detail->kind, UdfErrorKind::kUserError);
  EXPECT_EQ(detail->udf_name, "u");
  // The conversation is still in step: Cancel is answered and the worker serves again.
  execution_->Abort();
  EXPECT_FALSE(worker_->broken());
  EXPECT_EQ(watch.Readers().size(), 0u);  // an Error is no result batch
}

TEST_F(WorkerExecutionReading, AWorkerDyingWhileTheWaiterReadsIsLostWithItsSignal) {
  ASSERT_OK(Start("dies"));
  ASSERT_OK(execution_->Send(0, *Texts(3)));
  arrow::Status status = execution_->Receive(0, 3).status();
  const UdfErrorDetail* detail = UdfErrorDetailOf(status);
  ASSERT_NE(detail, nullptr) << status.ToString();
  EXPECT_EQ(detail->kind, UdfErrorKind::kWorkerLost);
  ASSERT_TRUE(detail->signal.has_value()) << detail->ToString();
  EXPECT_EQ(*detail->signal, 9);
  EXPECT_TRUE(worker_->broken());
}

// The waiter keeps the deadline whoever reads: a hanging UDF times out both
// when the waiter reads and over a transport whose Receive cannot time out.
class HangingWorker : public WorkerExecutionReading, public ::testing::WithParamInterface<bool> {};

TEST_P(HangingWorker, TimesOutWithinTheBatchTimeout) {
  watch.keeps_deadline = GetParam();
  ASSERT_OK(Start("hangs", milliseconds(500)));
  ASSERT_OK(execution_->Send(0, *Texts(3)));
  arrow::Status status = execution_->Receive(0, 3).status();
  const UdfErrorDetail* detail = UdfErrorDetailOf(status);
  ASSERT_NE(detail, nullptr) << status.ToString();
  EXPECT_EQ(detail->kind, UdfErrorKind::kTimeout);
  EXPECT_NE(status.message().find("did not answer batch 0 within 0.500 s"), std::string::npos)
      << status.ToString();
  EXPECT_TRUE(worker_->broken());
  execution_.reset();  // stops the receiving thread of a broken worker
}

INSTANTIATE_TEST_SUITE_P(WhoReads, HangingWorker, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& param) {
                           return param.param ? std::string("Waiter") : std::string("Receiver");
                         });

}  // namespace
}  // namespace quiver::worker
