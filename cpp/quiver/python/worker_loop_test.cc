#include "quiver/python/worker_loop.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <arrow/array/array_primitive.h>
#include <arrow/array/builder_primitive.h>
#include <arrow/buffer.h>
#include <arrow/ipc/writer.h>

#include "quiver/io/unique_fd.h"
#include "quiver/protocol/batch_codec.h"
#include "quiver/protocol/frame_codec.h"
#include "quiver/testing/status_matchers.h"

namespace quiver::python {
namespace {

using Batch = std::shared_ptr<arrow::RecordBatch>;

Batch Numbers(int64_t first, int64_t rows, const std::string& name = "x") {
  arrow::Int64Builder builder;
  for (int64_t i = 0; i < rows; ++i) EXPECT_TRUE(builder.Append(first + i).ok());
  auto schema = arrow::schema({arrow::field(name, arrow::int64())});
  return arrow::RecordBatch::Make(schema, rows, {builder.Finish().ValueOrDie()});
}

std::string Join(const std::vector<std::shared_ptr<arrow::Buffer>>& buffers) {
  std::string bytes;
  for (const auto& buffer : buffers) bytes += buffer->ToString();
  return bytes;
}

std::string DataFrame(uint64_t sequence, const std::string& body) {
  protocol::FrameHeader header;
  header.kind = protocol::FrameKind::kData;
  header.sequence = sequence;
  header.body_length = static_cast<int64_t>(body.size());
  std::string bytes(protocol::kFrameHeaderSize, '\0');
  protocol::WriteFrameHeader(header, reinterpret_cast<uint8_t*>(bytes.data()));
  return bytes + body;
}

std::string ControlFrame(const std::string& metadata) {
  protocol::FrameHeader header;
  header.metadata_length = static_cast<int64_t>(metadata.size());
  std::string bytes(protocol::kFrameHeaderSize, '\0');
  protocol::WriteFrameHeader(header, reinterpret_cast<uint8_t*>(bytes.data()));
  return bytes + metadata;
}

// The engine's end and the worker's end of a connected socket pair, and a
// loop on the worker's end for batches of Numbers() whose result is "y".
class WorkerLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    engine_ = io::UniqueFd(fds[0]);
    worker_ = io::UniqueFd(fds[1]);
    ASSERT_OK_AND_ASSIGN(auto schema_message,
                         arrow::ipc::SerializeSchema(*Numbers(0, 1)->schema()));
    ASSERT_OK_AND_ASSIGN(auto result_message,
                         arrow::ipc::SerializeSchema(*Numbers(0, 1, "y")->schema()));
    ASSERT_OK_AND_ASSIGN(
        loop_, WorkerBatchLoop::Make(worker_.get(), schema_message->ToString(),
                                     result_message->ToString(), protocol::kMaxResultBytes));
  }

  void Send(const std::string& bytes) {
    ASSERT_EQ(::write(engine_.get(), bytes.data(), bytes.size()),
              static_cast<ssize_t>(bytes.size()));
  }

  void SendBatch(uint64_t sequence, const Batch& batch) {
    auto body = protocol::EncodeBatchStream(*batch);
    ASSERT_OK(body);
    Send(DataFrame(sequence, Join(*body)));
  }

  // Serves with a UDF that adds 100 to x, counting the batches it runs.
  LoopExit Serve() {
    BatchLoopCallbacks callbacks;
    callbacks.run_batch = [this](uint64_t, Batch batch) -> arrow::Result<BatchAnswer> {
      ++batches_run_;
      if (fail_results_) return arrow::Status::Invalid("the result cannot be taken back");
      auto x = std::static_pointer_cast<arrow::Int64Array>(batch->column(0));
      BatchAnswer answer;
      answer.result = Numbers(x->Value(0) + 100, batch->num_rows(), "y");
      answer.result = arrow::RecordBatch::Make(loop_->result_schema(), batch->num_rows(),
                                               answer.result->columns());
      return answer;
    };
    callbacks.send_elsewhere = [](uint64_t, std::shared_ptr<arrow::Buffer>) {
      return arrow::Status::Invalid("not expected");
    };
    callbacks.interrupted = [] { return arrow::Status::OK(); };
    auto exit = loop_->Serve(callbacks);
    EXPECT_OK(exit);
    return exit.ok() ? *exit : LoopExit{};
  }

  // Reads one data frame the worker wrote; returns its bytes (header and body).
  std::string ReadFrame() {
    protocol::FrameDecoder decoder;
    while (true) {
      if (auto frame = decoder.Next()) {
        protocol::FrameHeader header{frame->kind, frame->sequence, 0, frame->body->size()};
        std::string bytes(protocol::kFrameHeaderSize, '\0');
        protocol::WriteFrameHeader(header, reinterpret_cast<uint8_t*>(bytes.data()));
        return bytes + frame->body->ToString();
      }
      auto chunk = arrow::AllocateBuffer(decoder.wanted()).ValueOrDie();
      const ssize_t count = ::read(engine_.get(), chunk->mutable_data(), chunk->size());
      if (count <= 0) return "";
      EXPECT_OK(decoder.Consume(arrow::SliceBuffer(std::move(chunk), 0, count)));
    }
  }

  io::UniqueFd engine_;
  io::UniqueFd worker_;
  std::unique_ptr<WorkerBatchLoop> loop_;
  int batches_run_ = 0;
  bool fail_results_ = false;
};

TEST_F(WorkerLoopTest, AnswersEachBatchWithTheEncodedResultAndStopsAtAControlFrame) {
  SendBatch(7, Numbers(1, 3));
  SendBatch(9, Numbers(5, 2));
  const std::string control = ControlFrame("\x22\x00");
  Send(control);
  LoopExit exit = Serve();
  EXPECT_EQ(batches_run_, 2);
  EXPECT_EQ(exit.read_error, 0);
  EXPECT_EQ(exit.write_error, 0);
  // The control frame's header is handed back unread; its metadata is still on the socket.
  EXPECT_EQ(exit.unread, control.substr(0, protocol::kFrameHeaderSize));
  auto expected = protocol::EncodeBatchStream(
      *arrow::RecordBatch::Make(loop_->result_schema(), 3, Numbers(101, 3, "y")->columns()));
  ASSERT_OK(expected);
  EXPECT_EQ(ReadFrame(), DataFrame(7, Join(*expected)));
  auto second = protocol::EncodeBatchStream(
      *arrow::RecordBatch::Make(loop_->result_schema(), 2, Numbers(105, 2, "y")->columns()));
  ASSERT_OK(second);
  EXPECT_EQ(ReadFrame(), DataFrame(9, Join(*second)));
}

TEST_F(WorkerLoopTest, HandsBackABodyOfAnotherSchemaOrBadBytesWhole) {
  auto other = protocol::EncodeBatchStream(*Numbers(1, 1, "z"));
  ASSERT_OK(other);
  const std::string frame = DataFrame(3, Join(*other));
  Send(frame);
  EXPECT_EQ(Serve().unread, frame);
  const std::string garbage = DataFrame(4, "notarrow");
  Send(garbage);
  EXPECT_EQ(Serve().unread, garbage);
  // A known schema message followed by a second batch: not exactly one batch.
  auto one = protocol::EncodeBatchStream(*Numbers(1, 1));
  auto two = protocol::EncodeBatchStream(*Numbers(2, 1));
  ASSERT_OK(one);
  ASSERT_OK(two);
  std::string twice = Join(*one);
  twice.resize(twice.size() - 8);  // drop the end of stream, append the second batch's message
  const std::string second_message = Join(*two);
  const auto schema_size =
      arrow::ipc::SerializeSchema(*Numbers(0, 1)->schema()).ValueOrDie()->size();
  twice += second_message.substr(static_cast<size_t>(schema_size));
  Send(DataFrame(5, twice));
  EXPECT_EQ(Serve().unread, DataFrame(5, twice));
  EXPECT_EQ(batches_run_, 0);
}

TEST_F(WorkerLoopTest, HandsBackABrokenHeaderAndWhatCameBeforeEndOfFile) {
  Send("QVR9-not-a-header-of-32-bytes...");
  EXPECT_EQ(Serve().unread, "QVR9-not-a-header-of-32-bytes...");
  const std::string truncated = DataFrame(1, std::string(100, 'x')).substr(0, 40);
  Send(truncated);
  engine_ = io::UniqueFd();  // the engine goes away inside the frame
  LoopExit exit = Serve();
  EXPECT_EQ(exit.unread, truncated);
  EXPECT_EQ(exit.read_error, 0);
  EXPECT_EQ(Serve().unread, "");  // EOF at a frame boundary: nothing to hand back
}

TEST_F(WorkerLoopTest, AnInvalidBatchIsNotRun) {
  // A batch whose offsets point past its data, after the known schema message.
  auto bad = arrow::RecordBatch::Make(Numbers(0, 1)->schema(), 5, Numbers(0, 1)->columns());
  auto body = protocol::EncodeBatchStream(*bad);
  ASSERT_OK(body);
  const std::string frame = DataFrame(2, Join(*body));
  Send(frame);
  EXPECT_EQ(Serve().unread, frame);
  EXPECT_EQ(batches_run_, 0);
}

TEST_F(WorkerLoopTest, ReportsABatchItCannotAnswerAndStops) {
  fail_results_ = true;
  SendBatch(4, Numbers(1, 1));
  SendBatch(5, Numbers(2, 1));
  LoopExit exit = Serve();
  EXPECT_TRUE(exit.unanswered);
  EXPECT_EQ(exit.unanswered_sequence, 4u);
  EXPECT_EQ(exit.unanswered_reason, "the result cannot be taken back");
  EXPECT_EQ(batches_run_, 1);  // batch 5 waits on the socket for the Python worker
  fail_results_ = false;
  Send(ControlFrame("\x22\x00"));
  EXPECT_FALSE(Serve().unanswered);
  EXPECT_EQ(batches_run_, 2);
}

TEST(WorkerLoopMake, RefusesBytesThatAreNoSchemaMessage) {
  auto loop = WorkerBatchLoop::Make(0, "nonsense", "nonsense", 1);
  ASSERT_FALSE(loop.ok());
  EXPECT_NE(loop.status().message().find("not an Arrow IPC schema message"), std::string::npos);
}

}  // namespace
}  // namespace quiver::python
