#include "quiver/transport/uds/uds_connection.h"

#include <sys/socket.h>

#include <future>
#include <string>

#include <gtest/gtest.h>

#include "quiver/io/unix_socket.h"
#include "quiver/protocol/batch_codec.h"
#include "quiver/testing/sample_data.h"
#include "quiver/testing/status_matchers.h"

namespace quiver::transport::uds {
namespace {

// The engine's end as a Connection, the worker's end as a raw socket.
struct Ends {
  std::unique_ptr<Connection> engine;
  io::UniqueFd worker;
};

Ends Connect() {
  int fds[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  return {MakeUdsConnection(io::UniqueFd(fds[0]), "unix:test"), io::UniqueFd(fds[1])};
}

// Reads one frame from the worker's end.
protocol::Frame ReadFrame(const io::UniqueFd& socket) {
  protocol::FrameDecoder decoder;
  while (true) {
    uint8_t byte;
    auto got = io::ReceiveAll(socket.get(), &byte, 1, io::kNoDeadline);
    EXPECT_TRUE(got.ok() && *got == 1);
    EXPECT_OK(decoder.Consume(arrow::Buffer::FromString(std::string(1, static_cast<char>(byte)))));
    if (auto frame = decoder.Next()) return *frame;
  }
}

void SendWorkerMessage(const io::UniqueFd& socket, const v1::WorkerMessage& message) {
  auto frame = protocol::EncodeControlFrame(arrow::Buffer::FromString(message.SerializeAsString()));
  ASSERT_OK(io::SendAll(socket.get(), frame->buffers, io::kNoDeadline));
}

TEST(UdsConnection, ControlMessagesTravelBothWays) {
  auto ends = Connect();
  v1::EngineMessage heartbeat;
  heartbeat.mutable_heartbeat()->set_nonce(42);
  ASSERT_OK(ends.engine->SendControl(heartbeat, io::kNoDeadline));
  auto frame = ReadFrame(ends.worker);
  v1::EngineMessage received;
  ASSERT_TRUE(
      received.ParseFromArray(frame.metadata->data(), static_cast<int>(frame.metadata->size())));
  EXPECT_EQ(received.heartbeat().nonce(), 42u);

  v1::WorkerMessage echo;
  echo.mutable_heartbeat()->set_nonce(43);
  SendWorkerMessage(ends.worker, echo);
  ASSERT_OK_AND_ASSIGN(auto reply, ends.engine->Receive(io::kNoDeadline));
  ASSERT_TRUE(reply.control.has_value());
  EXPECT_EQ(reply.control->heartbeat().nonce(), 43u);
}

TEST(UdsConnection, BatchesTravelBothWaysIntact) {
  auto ends = Connect();
  ASSERT_OK_AND_ASSIGN(auto batch, quiver::testing::MakeSampleBatch(2));
  ASSERT_OK(ends.engine->SendBatch(7, *batch, io::kNoDeadline));
  auto frame = ReadFrame(ends.worker);
  EXPECT_EQ(frame.kind, protocol::FrameKind::kData);
  EXPECT_EQ(frame.sequence, 7u);
  ASSERT_OK_AND_ASSIGN(auto decoded, protocol::DecodeBatchStream(frame.body));
  EXPECT_TRUE(decoded->Equals(*batch));

  ASSERT_OK_AND_ASSIGN(auto body, protocol::EncodeBatchStream(*batch));
  ASSERT_OK_AND_ASSIGN(auto answer, protocol::EncodeDataFrame(7, body));
  ASSERT_OK(io::SendAll(ends.worker.get(), answer.buffers, io::kNoDeadline));
  ASSERT_OK_AND_ASSIGN(auto reply, ends.engine->Receive(io::kNoDeadline));
  EXPECT_FALSE(reply.control.has_value());
  EXPECT_EQ(reply.sequence, 7u);
  EXPECT_TRUE(reply.batch->Equals(*batch));
  // The result's buffers are 64-byte aligned slices of one received body.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(reply.batch->column(1)->data()->buffers[1]->data()) % 8,
            0u);
}

TEST(UdsConnection, ClosedConnectionIsAClearError) {
  auto ends = Connect();
  ends.worker.Reset();
  auto reply = ends.engine->Receive(io::kNoDeadline);
  ASSERT_FALSE(reply.ok());
  EXPECT_NE(reply.status().message().find("closed the connection"), std::string::npos);
}

TEST(UdsConnection, ConnectionLostMidFrameSaysSo) {
  auto ends = Connect();
  v1::WorkerMessage message;
  message.mutable_init_response()->set_result_schema(std::string(100, 'x'));
  auto frame = protocol::EncodeControlFrame(arrow::Buffer::FromString(message.SerializeAsString()));
  ASSERT_OK(io::SendAll(ends.worker.get(), {frame->buffers[0]}, io::kNoDeadline));  // header only
  ends.worker.Reset();
  auto reply = ends.engine->Receive(io::kNoDeadline);
  ASSERT_FALSE(reply.ok());
  EXPECT_NE(reply.status().message().find("in the middle of a frame metadata"), std::string::npos)
      << reply.status().ToString();
}

TEST(UdsConnection, GarbageIsRejected) {
  auto ends = Connect();
  ASSERT_OK(io::SendAll(ends.worker.get(), {arrow::Buffer::FromString(std::string(32, 'g'))},
                        io::kNoDeadline));
  auto reply = ends.engine->Receive(io::kNoDeadline);
  ASSERT_FALSE(reply.ok());
  EXPECT_NE(reply.status().message().find("bad frame magic"), std::string::npos);
}

TEST(UdsConnection, ShutdownWakesABlockedReceive) {
  auto ends = Connect();
  auto receiver =
      std::async(std::launch::async, [&] { return ends.engine->Receive(io::kNoDeadline); });
  EXPECT_EQ(receiver.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  ends.engine->Shutdown();
  EXPECT_FALSE(receiver.get().ok());
}

}  // namespace
}  // namespace quiver::transport::uds
