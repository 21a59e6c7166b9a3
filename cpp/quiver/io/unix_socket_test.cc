#include "quiver/io/unix_socket.h"

#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "quiver/testing/status_matchers.h"

namespace quiver::io {
namespace {

using std::chrono::milliseconds;

struct SocketPair {
  UniqueFd left;
  UniqueFd right;
};

SocketPair MakePair() {
  int fds[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

TEST(UnixSocket, SendAllWritesManyBuffersInOrder) {
  auto pair = MakePair();
  std::vector<std::shared_ptr<arrow::Buffer>> buffers;
  std::string expected;
  for (int i = 0; i < 3000; ++i) {  // more pieces than one sendmsg takes (IOV_MAX)
    std::string piece(static_cast<size_t>(1 + i % 300), static_cast<char>('a' + i % 26));
    expected += piece;
    buffers.push_back(arrow::Buffer::FromString(piece));
  }
  auto reader = std::async(std::launch::async, [&] {
    std::string received(expected.size(), '\0');
    auto got = ReceiveAll(pair.right.get(), reinterpret_cast<uint8_t*>(received.data()),
                          static_cast<int64_t>(received.size()), DeadlineIn(milliseconds(10000)));
    EXPECT_TRUE(got.ok());
    return received;
  });
  ASSERT_OK(SendAll(pair.left.get(), buffers, DeadlineIn(milliseconds(10000))));
  EXPECT_EQ(reader.get(), expected);
}

TEST(UnixSocket, ReceiveAllReturnsFewerBytesWhenThePeerCloses) {
  auto pair = MakePair();
  ASSERT_OK(SendAll(pair.left.get(), {arrow::Buffer::FromString("abc")}, kNoDeadline));
  pair.left.Reset();
  uint8_t out[10];
  ASSERT_OK_AND_ASSIGN(int64_t got, ReceiveAll(pair.right.get(), out, 10, kNoDeadline));
  EXPECT_EQ(got, 3);
  ASSERT_OK_AND_ASSIGN(got, ReceiveAll(pair.right.get(), out, 10, kNoDeadline));
  EXPECT_EQ(got, 0);
}

TEST(UnixSocket, ReceiveTimesOutWhenNothingArrives) {
  auto pair = MakePair();
  uint8_t out[1];
  auto result = ReceiveAll(pair.right.get(), out, 1, DeadlineIn(milliseconds(50)));
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("timed out"), std::string::npos);
}

TEST(UnixSocket, SendToAClosedPeerIsAnErrorNotASignal) {
  auto pair = MakePair();
  pair.right.Reset();
  auto status = SendAll(pair.left.get(), {arrow::Buffer::FromString("x")}, kNoDeadline);
  EXPECT_FALSE(status.ok());
}

TEST(UnixSocket, SendTimesOutWhenThePeerStopsReading) {
  auto pair = MakePair();
  auto big = arrow::Buffer::FromString(std::string(16 << 20, 'z'));
  auto status = SendAll(pair.left.get(), {big}, DeadlineIn(milliseconds(100)));
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("timed out"), std::string::npos);
}

TEST(UnixSocket, ListenAcceptAndConnect) {
  char directory[] = "/tmp/quiver-test-XXXXXX";
  ASSERT_NE(::mkdtemp(directory), nullptr);
  const std::string path = std::string(directory) + "/socket";
  ASSERT_OK_AND_ASSIGN(auto listener, ListenUnixSocket(path));
  ASSERT_OK_AND_ASSIGN(auto nobody, AcceptUnixSocket(listener, DeadlineIn(milliseconds(20))));
  EXPECT_FALSE(nobody.has_value());
  ASSERT_OK_AND_ASSIGN(auto client, ConnectUnixSocket(path));
  ASSERT_OK_AND_ASSIGN(auto server, AcceptUnixSocket(listener, DeadlineIn(milliseconds(1000))));
  ASSERT_TRUE(server.has_value());
  ASSERT_OK(SendAll(client.get(), {arrow::Buffer::FromString("hi")}, kNoDeadline));
  uint8_t out[2];
  ASSERT_OK_AND_ASSIGN(int64_t got, ReceiveAll(server->get(), out, 2, kNoDeadline));
  EXPECT_EQ(got, 2);
  std::filesystem::remove_all(directory);
}

TEST(UnixSocket, OverlongPathIsAClearError) {
  auto result = ListenUnixSocket("/tmp/" + std::string(200, 'x'));
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("over the limit"), std::string::npos);
}

}  // namespace
}  // namespace quiver::io
