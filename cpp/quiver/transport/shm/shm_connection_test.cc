// The engine's end of the shm transport against a fake worker in this process
// that maps the input arena it is given and hands over whatever result memfds a
// test wants, good or bad: results the worker could still change are refused,
// and nothing the worker does after a hand-over changes what the engine read.

#include "quiver/transport/shm/shm_connection.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <future>
#include <string>
#include <vector>

#include <arrow/builder.h>
#include <gtest/gtest.h>

#include "quiver/io/unix_socket.h"
#include "quiver/protocol/batch_codec.h"
#include "quiver/testing/sample_data.h"
#include "quiver/testing/status_matchers.h"
#include "quiver/transport/shm/result_memfd.h"

namespace quiver::transport::shm {
namespace {

struct Mapping {
  uint8_t* data = nullptr;
  int64_t size = 0;
};

struct FakeWorker {
  io::UniqueFd socket;
  Mapping input;
  ~FakeWorker() { Leave(); }

  // Unmaps the arena and closes the socket, as a worker that exits.
  void Leave() {
    if (input.data != nullptr) ::munmap(input.data, static_cast<size_t>(input.size));
    input = {};
    socket.Reset();
  }
};

// Reads one frame; the descriptors that came with its first byte go to `fds`.
protocol::Frame ReadFrame(int socket, std::vector<int>* fds = nullptr) {
  protocol::FrameDecoder decoder;
  bool first = true;
  while (true) {
    uint8_t byte = 0;
    char control[CMSG_SPACE(sizeof(int) * 4)] = {};
    iovec vector{&byte, 1};
    msghdr message{};
    message.msg_iov = &vector;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof(control);
    EXPECT_EQ(::recvmsg(socket, &message, 0), 1);
    if (first && fds != nullptr) {
      for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(&message, c)) {
        const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        fds->resize(count);
        std::memcpy(fds->data(), CMSG_DATA(c), count * sizeof(int));
      }
    }
    first = false;
    EXPECT_OK(decoder.Consume(arrow::Buffer::FromString(std::string(1, static_cast<char>(byte)))));
    if (auto frame = decoder.Next()) return *frame;
  }
}

v1::EngineMessage ReadEngineMessage(int socket) {
  auto frame = ReadFrame(socket);
  v1::EngineMessage message;
  EXPECT_EQ(frame.kind, protocol::FrameKind::kControl);
  EXPECT_TRUE(
      message.ParseFromArray(frame.metadata->data(), static_cast<int>(frame.metadata->size())));
  return message;
}

void SendWorkerMessage(int socket, const v1::WorkerMessage& message) {
  auto frame = protocol::EncodeControlFrame(arrow::Buffer::FromString(message.SerializeAsString()));
  ASSERT_OK(io::SendAll(socket, frame->buffers, io::kNoDeadline));
}

Mapping Map(int fd, int64_t size, int protection) {
  void* data = ::mmap(nullptr, static_cast<size_t>(size), protection, MAP_SHARED, fd, 0);
  EXPECT_NE(data, MAP_FAILED);
  ::close(fd);
  return {static_cast<uint8_t*>(data), size};
}

struct Ends {
  std::unique_ptr<ShmConnection> engine;
  FakeWorker worker;
};

// Connects an engine end to a fake worker and runs the shm set-up between them.
void Connect(Ends* ends, ArenaSizes sizes = {1 << 20}) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  ends->engine = MakeShmConnection(io::UniqueFd(fds[0]), "shm:test");
  ends->worker.socket = io::UniqueFd(fds[1]);
  auto setup =
      std::async(std::launch::async, [&] { return ends->engine->Setup(sizes, io::kNoDeadline); });
  std::vector<int> arenas;
  auto frame = ReadFrame(ends->worker.socket.get(), &arenas);
  v1::EngineMessage message;
  ASSERT_TRUE(
      message.ParseFromArray(frame.metadata->data(), static_cast<int>(frame.metadata->size())));
  ASSERT_TRUE(message.has_shm_setup());
  ASSERT_EQ(arenas.size(), 1u);
  EXPECT_EQ(message.shm_setup().output_bytes(), 0u);
  const auto input_size = static_cast<int64_t>(message.shm_setup().input_bytes());
  // The input arena is the engine's to write: the worker cannot map it writable.
  void* writable = ::mmap(nullptr, static_cast<size_t>(input_size), PROT_READ | PROT_WRITE,
                          MAP_SHARED, arenas[0], 0);
  EXPECT_EQ(writable, MAP_FAILED);
  ends->worker.input = Map(arenas[0], input_size, PROT_READ);
  v1::WorkerMessage ready;
  ready.mutable_shm_ready();
  SendWorkerMessage(ends->worker.socket.get(), ready);
  ASSERT_OK(setup.get());
}

// A result memfd as an honest worker makes one: the stream written with
// write(), never mapped; `flags` are memfd_create's.
struct ResultMemfd {
  io::UniqueFd fd;
  uint64_t length = 0;
};

ResultMemfd WriteResult(const arrow::RecordBatch& batch, uint64_t offset = 0,
                        unsigned flags = MFD_CLOEXEC | MFD_ALLOW_SEALING) {
  ResultMemfd result{io::UniqueFd(::memfd_create("quiver-test-result", flags)), 0};
  EXPECT_TRUE(result.fd.valid()) << std::strerror(errno);
  for (const auto& part : protocol::EncodeBatchStream(batch).ValueOrDie()) {
    EXPECT_EQ(::pwrite(result.fd.get(), part->data(), static_cast<size_t>(part->size()),
                       static_cast<off_t>(offset + result.length)),
              part->size());
    result.length += static_cast<uint64_t>(part->size());
  }
  return result;
}

// Sends ShmData naming [offset, offset + length) with `descriptor` (-1: none)
// attached to the frame's first byte.
void SendSharedResult(FakeWorker& worker, uint64_t sequence, uint64_t offset, uint64_t length,
                      int descriptor) {
  v1::WorkerMessage message;
  message.mutable_shm_data()->set_sequence(sequence);
  message.mutable_shm_data()->mutable_region()->set_offset(offset);
  message.mutable_shm_data()->mutable_region()->set_length(length);
  auto frame = protocol::EncodeControlFrame(arrow::Buffer::FromString(message.SerializeAsString()));
  std::string bytes;
  for (const auto& part : frame->buffers) bytes.append(part->ToString());
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  iovec vector{bytes.data(), bytes.size()};
  msghdr header{};
  header.msg_iov = &vector;
  header.msg_iovlen = 1;
  if (descriptor >= 0) {
    header.msg_control = control;
    header.msg_controllen = sizeof(control);
    cmsghdr* rights = CMSG_FIRSTHDR(&header);
    rights->cmsg_level = SOL_SOCKET;
    rights->cmsg_type = SCM_RIGHTS;
    rights->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(rights), &descriptor, sizeof(int));
  }
  ASSERT_EQ(::sendmsg(worker.socket.get(), &header, MSG_NOSIGNAL),
            static_cast<ssize_t>(bytes.size()));
}

void SendSharedResult(FakeWorker& worker, uint64_t sequence, const ResultMemfd& result) {
  SendSharedResult(worker, sequence, 0, result.length, result.fd.get());
}

// A batch whose stream is larger than kCopyResultsUpTo: the engine maps it.
std::shared_ptr<arrow::RecordBatch> MakeLargeBatch() {
  arrow::StringBuilder builder;
  const std::string row(1000, 'q');
  for (int i = 0; i < 3000; ++i) EXPECT_OK(builder.Append(row));
  auto column = builder.Finish().ValueOrDie();
  auto schema = arrow::schema({arrow::field("text", arrow::utf8())});
  return arrow::RecordBatch::Make(schema, column->length(), {column});
}

TEST(ShmConnection, BatchesTravelThroughSharedMemory) {
  Ends ends;
  Connect(&ends);
  ASSERT_OK_AND_ASSIGN(auto batch, quiver::testing::MakeSampleBatch(2));
  ASSERT_OK(ends.engine->SendBatch(7, *batch, io::kNoDeadline));
  // The frame names a region of the input arena; the batch is there, read in place.
  auto sent = ReadEngineMessage(ends.worker.socket.get());
  ASSERT_TRUE(sent.has_shm_data());
  EXPECT_EQ(sent.shm_data().sequence(), 7u);
  const auto& region = sent.shm_data().region();
  auto body = std::make_shared<arrow::Buffer>(ends.worker.input.data + region.offset(),
                                              static_cast<int64_t>(region.length()));
  ASSERT_OK_AND_ASSIGN(auto decoded, protocol::DecodeBatchStream(body));
  EXPECT_TRUE(decoded->Equals(*batch));

  for (const auto& result : {batch, MakeLargeBatch()}) {  // copied out, then mapped
    ResultMemfd memfd = WriteResult(*result);
    SendSharedResult(ends.worker, 7, memfd);
    ASSERT_OK_AND_ASSIGN(auto reply, ends.engine->Receive(io::kNoDeadline));
    EXPECT_EQ(reply.sequence, 7u);
    EXPECT_TRUE(reply.batch->Equals(*result));
  }
}

TEST(ShmConnection, ResultBuffersKeepTheMappingAliveAfterTheConnectionIsGone) {
  Ends ends;
  Connect(&ends);
  auto batch = MakeLargeBatch();
  SendSharedResult(ends.worker, 0, WriteResult(*batch));
  ASSERT_OK_AND_ASSIGN(auto reply, ends.engine->Receive(io::kNoDeadline));
  ends.engine.reset();
  ends.worker.Leave();
  EXPECT_TRUE(reply.batch->Equals(*batch));
  EXPECT_OK(reply.batch->ValidateFull());
}

// Everything a worker that kept its result's memfd could try after handing it
// over; each must fail, and the engine's batch must stay what it validated.
void TryToChange(int fd, uint64_t length) {
  const char garbage[64] = {'\x7f'};
  EXPECT_EQ(::pwrite(fd, garbage, sizeof(garbage), 0), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_NE(::ftruncate(fd, 8), 0);
  EXPECT_NE(::ftruncate(fd, static_cast<off_t>(length) * 2), 0);
  EXPECT_NE(
      ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, static_cast<off_t>(length)),
      0);
  EXPECT_EQ(::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), MAP_FAILED);
}

TEST(ShmConnection, AWorkerCannotChangeAResultAfterHandingItOver) {
  Ends ends;
  Connect(&ends);
  ASSERT_OK_AND_ASSIGN(auto small, quiver::testing::MakeSampleBatch(1));
  for (const auto& batch : {small, MakeLargeBatch()}) {
    ResultMemfd memfd = WriteResult(*batch);
    SendSharedResult(ends.worker, 0, memfd);
    ASSERT_OK_AND_ASSIGN(auto reply, ends.engine->Receive(io::kNoDeadline));
    TryToChange(memfd.fd.get(), memfd.length);
    EXPECT_OK(reply.batch->ValidateFull());
    EXPECT_TRUE(reply.batch->Equals(*batch));
  }
}

TEST(ShmConnection, AResultTheWorkerStillMapsWritableIsRefused) {
  Ends ends;
  Connect(&ends);
  auto batch = MakeLargeBatch();
  ResultMemfd memfd = WriteResult(*batch);
  void* writable =
      ::mmap(nullptr, memfd.length, PROT_READ | PROT_WRITE, MAP_SHARED, memfd.fd.get(), 0);
  ASSERT_NE(writable, MAP_FAILED);
  SendSharedResult(ends.worker, 4, memfd);
  auto reply = ends.engine->Receive(io::kNoDeadline);
  ASSERT_FALSE(reply.ok());
  EXPECT_NE(reply.status().message().find("batch 4"), std::string::npos);
  EXPECT_NE(reply.status().message().find("still mapped writable"), std::string::npos)
      << reply.status().ToString();
  ::munmap(writable, memfd.length);
}

TEST(ShmConnection, AReadOnlyMappingOfAResultNeverBecomesWritable) {
  // A shared mapping made read-only could be made writable with mprotect while
  // its memfd allows writes: either the seal is refused, or mprotect is.
  Ends ends;
  Connect(&ends);
  auto batch = MakeLargeBatch();
  ResultMemfd memfd = WriteResult(*batch);
  void* mapping = ::mmap(nullptr, memfd.length, PROT_READ, MAP_SHARED, memfd.fd.get(), 0);
  ASSERT_NE(mapping, MAP_FAILED);
  SendSharedResult(ends.worker, 0, memfd);
  auto reply = ends.engine->Receive(io::kNoDeadline);
  if (reply.ok()) {
    EXPECT_NE(::mprotect(mapping, memfd.length, PROT_READ | PROT_WRITE), 0);
    EXPECT_TRUE(reply->batch->Equals(*batch));
  } else {
    EXPECT_NE(reply.status().message().find("still mapped writable"), std::string::npos);
  }
  ::munmap(mapping, memfd.length);
}

struct BadDescriptor {
  const char* name;
  int (*make)();  // returns the descriptor to attach, or -1 for none
  const char* says;
};

int Pipe() {
  int ends[2];
  EXPECT_EQ(::pipe(ends), 0);
  ::close(ends[1]);
  return ends[0];
}

int UnsealableMemfd() {
  auto batch = quiver::testing::MakeSampleBatch(0).ValueOrDie();
  return WriteResult(*batch, 0, MFD_CLOEXEC).fd.Release();
}

class ShmBadDescriptor : public ::testing::TestWithParam<BadDescriptor> {};

TEST_P(ShmBadDescriptor, IsRefusedBeforeAnyByteIsRead) {
  Ends ends;
  Connect(&ends);
  const BadDescriptor& bad = GetParam();
  io::UniqueFd descriptor(bad.make());
  SendSharedResult(ends.worker, 2, 0, 64, descriptor.get());
  auto reply = ends.engine->Receive(io::kNoDeadline);
  ASSERT_FALSE(reply.ok());
  EXPECT_NE(reply.status().message().find(bad.says), std::string::npos)
      << reply.status().ToString();
  EXPECT_NE(reply.status().message().find("batch 2"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(
    Descriptors, ShmBadDescriptor,
    ::testing::Values(BadDescriptor{"none", [] { return -1; }, "came with 0 descriptors"},
                      BadDescriptor{"pipe", Pipe, "is not a memfd"},
                      BadDescriptor{"unsealable", UnsealableMemfd, "MFD_ALLOW_SEALING"}),
    [](const auto& test) { return std::string(test.param.name); });

TEST(ShmConnection, ADescriptorOnAnyOtherFrameIsRefused) {
  Ends ends;
  Connect(&ends);
  ASSERT_OK_AND_ASSIGN(auto batch, quiver::testing::MakeSampleBatch(0));
  ResultMemfd memfd = WriteResult(*batch);
  v1::WorkerMessage heartbeat;
  heartbeat.mutable_heartbeat()->set_nonce(9);
  auto frame =
      protocol::EncodeControlFrame(arrow::Buffer::FromString(heartbeat.SerializeAsString()));
  std::string bytes;
  for (const auto& part : frame->buffers) bytes.append(part->ToString());
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  iovec vector{bytes.data(), bytes.size()};
  msghdr header{};
  header.msg_iov = &vector;
  header.msg_iovlen = 1;
  header.msg_control = control;
  header.msg_controllen = sizeof(control);
  cmsghdr* rights = CMSG_FIRSTHDR(&header);
  rights->cmsg_level = SOL_SOCKET;
  rights->cmsg_type = SCM_RIGHTS;
  rights->cmsg_len = CMSG_LEN(sizeof(int));
  const int fd = memfd.fd.get();
  std::memcpy(CMSG_DATA(rights), &fd, sizeof(int));
  ASSERT_GT(::sendmsg(ends.worker.socket.get(), &header, MSG_NOSIGNAL), 0);
  auto reply = ends.engine->Receive(io::kNoDeadline);
  ASSERT_FALSE(reply.ok());
  EXPECT_NE(reply.status().message().find("descriptor(s) to heartbeat"), std::string::npos)
      << reply.status().ToString();
}

struct BadRegion {
  const char* name;
  uint64_t offset;
  uint64_t length;
  const char* says;
};

class ShmBadRegion : public ::testing::TestWithParam<BadRegion> {};

TEST_P(ShmBadRegion, IsRefusedBeforeAnyByteIsRead) {
  Ends ends;
  Connect(&ends);
  const BadRegion& bad = GetParam();
  // A memfd of 1 MiB of zeros: only the region's numbers are wrong.
  io::UniqueFd memfd(::memfd_create("quiver-test-result", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  ASSERT_EQ(::ftruncate(memfd.get(), 1 << 20), 0);
  SendSharedResult(ends.worker, 3, bad.offset, bad.length, memfd.get());
  auto reply = ends.engine->Receive(io::kNoDeadline);
  ASSERT_FALSE(reply.ok());
  EXPECT_NE(reply.status().message().find(bad.says), std::string::npos)
      << reply.status().ToString();
  EXPECT_NE(reply.status().message().find("batch 3"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(
    Regions, ShmBadRegion,
    ::testing::Values(BadRegion{"past_the_end", (1 << 20) - 64, 128, "outside"},
                      BadRegion{"far_past_the_end", uint64_t{1} << 40, 64, "outside"},
                      BadRegion{"wrapping_length", 64, UINT64_MAX - 32, "outside"},
                      BadRegion{"misaligned", 4, 64, "aligned"}, BadRegion{"empty", 0, 0, "empty"},
                      BadRegion{"garbage_bytes", 0, 256, "not a valid Arrow IPC stream"}),
    [](const auto& test) { return std::string(test.param.name); });

TEST(ShmConnection, AHalfWrittenResultIsAnErrorNotABatch) {
  // A worker that died while writing cannot send the frame; one that sends it
  // anyway with half the bytes gives an error, never a batch.
  Ends ends;
  Connect(&ends);
  ASSERT_OK_AND_ASSIGN(auto batch, quiver::testing::MakeSampleBatch(1));
  ResultMemfd memfd = WriteResult(*batch);
  const std::string junk(memfd.length - memfd.length / 2, '\xff');
  ASSERT_EQ(::pwrite(memfd.fd.get(), junk.data(), junk.size(), memfd.length / 2),
            static_cast<ssize_t>(junk.size()));
  SendSharedResult(ends.worker, 0, memfd);
  auto reply = ends.engine->Receive(io::kNoDeadline);
  if (reply.ok()) {
    EXPECT_FALSE(reply->batch->ValidateFull().ok());  // what WorkerSession checks next
  } else {
    EXPECT_NE(reply.status().message().find("batch 0"), std::string::npos);
  }
}

TEST(ShmConnection, ABatchWithoutRoomTravelsInlineUntilTheWorkerAnswers) {
  Ends ends;
  ASSERT_OK_AND_ASSIGN(auto batch, quiver::testing::MakeSampleBatch(1));
  ASSERT_OK_AND_ASSIGN(auto parts, protocol::EncodeBatchStream(*batch));
  int64_t length = 0;
  for (const auto& part : parts) length += part->size();
  Connect(&ends, {length + 64});  // room for one batch
  ASSERT_OK(ends.engine->SendBatch(0, *batch, io::kNoDeadline));
  EXPECT_TRUE(ReadEngineMessage(ends.worker.socket.get()).has_shm_data());
  ASSERT_OK(ends.engine->SendBatch(1, *batch, io::kNoDeadline));
  auto inline_frame = ReadFrame(ends.worker.socket.get());
  EXPECT_EQ(inline_frame.kind, protocol::FrameKind::kData);
  EXPECT_EQ(inline_frame.sequence, 1u);
  // Answering batch 0 (inline here) frees its region: batch 2 goes through shared memory.
  ASSERT_OK_AND_ASSIGN(auto answer, protocol::EncodeDataFrame(0, parts));
  ASSERT_OK(io::SendAll(ends.worker.socket.get(), answer.buffers, io::kNoDeadline));
  ASSERT_OK_AND_ASSIGN(auto reply, ends.engine->Receive(io::kNoDeadline));
  EXPECT_TRUE(reply.batch->Equals(*batch));
  ASSERT_OK(ends.engine->SendBatch(2, *batch, io::kNoDeadline));
  EXPECT_TRUE(ReadEngineMessage(ends.worker.socket.get()).has_shm_data());
}

TEST(ShmConnection, AWorkerThatDoesNotTakeTheArenasIsRefused) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  auto engine = MakeShmConnection(io::UniqueFd(fds[0]), "shm:test");
  io::UniqueFd worker(fds[1]);
  auto setup =
      std::async(std::launch::async, [&] { return engine->Setup({4096}, io::kNoDeadline); });
  std::vector<int> arenas;
  ReadFrame(worker.get(), &arenas);
  for (int fd : arenas) ::close(fd);
  v1::WorkerMessage heartbeat;  // a uds-only worker would not answer ShmReady
  heartbeat.mutable_heartbeat()->set_nonce(1);
  SendWorkerMessage(worker.get(), heartbeat);
  auto status = setup.get();
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("does not speak the shm transport"), std::string::npos)
      << status.ToString();
}

}  // namespace
}  // namespace quiver::transport::shm
