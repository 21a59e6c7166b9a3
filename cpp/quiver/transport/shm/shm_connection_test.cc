// The engine's end of the shm transport against a fake worker in this process
// that maps the arenas it is given and writes whatever a test wants, good or bad.

#include "quiver/transport/shm/shm_connection.h"

#include <sys/mman.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <future>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <arrow/array/builder_binary.h>
#include <arrow/record_batch.h>
#include <arrow/type.h>

#include "quiver/io/shared_memory.h"
#include "quiver/io/unix_socket.h"
#include "quiver/protocol/batch_codec.h"
#include "quiver/testing/sample_data.h"
#include "quiver/testing/status_matchers.h"

namespace quiver::transport::shm {
namespace {

struct Mapping {
  uint8_t* data = nullptr;
  int64_t size = 0;
};

struct FakeWorker {
  io::UniqueFd socket;
  Mapping input;
  Mapping output;
  ~FakeWorker() { Leave(); }

  // Unmaps the arenas and closes the socket, as a worker that exits.
  void Leave() {
    if (input.data != nullptr) ::munmap(input.data, static_cast<size_t>(input.size));
    if (output.data != nullptr) ::munmap(output.data, static_cast<size_t>(output.size));
    input = output = {};
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
// A batch whose Arrow IPC stream is long enough to travel through shared memory
// (smaller ones go inline: io::kInlineBelowBytes).
std::shared_ptr<arrow::RecordBatch> SharedSizedBatch() {
  arrow::StringBuilder builder;
  EXPECT_TRUE(builder.Append(std::string(io::kInlineBelowBytes, 'q')).ok());
  EXPECT_TRUE(builder.Append("short").ok());
  std::shared_ptr<arrow::Array> strings = builder.Finish().ValueOrDie();
  return arrow::RecordBatch::Make(arrow::schema({arrow::field("s", arrow::utf8())}), 2, {strings});
}

void Connect(Ends* ends, ArenaSizes sizes = {1 << 20, 1 << 20}) {
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
  ASSERT_EQ(arenas.size(), 2u);
  const auto input_size = static_cast<int64_t>(message.shm_setup().input_bytes());
  const auto output_size = static_cast<int64_t>(message.shm_setup().output_bytes());
  // The input arena is the engine's to write: the worker cannot map it writable.
  void* writable = ::mmap(nullptr, static_cast<size_t>(input_size), PROT_READ | PROT_WRITE,
                          MAP_SHARED, arenas[0], 0);
  EXPECT_EQ(writable, MAP_FAILED);
  ends->worker.input = Map(arenas[0], input_size, PROT_READ);
  ends->worker.output = Map(arenas[1], output_size, PROT_READ | PROT_WRITE);
  v1::WorkerMessage ready;
  ready.mutable_shm_ready();
  SendWorkerMessage(ends->worker.socket.get(), ready);
  ASSERT_OK(setup.get());
}

// Writes the Arrow IPC stream of `batch` into the worker's output arena at `offset`.
int64_t WriteResult(FakeWorker& worker, int64_t offset, const arrow::RecordBatch& batch) {
  auto parts = protocol::EncodeBatchStream(batch).ValueOrDie();
  int64_t length = 0;
  for (const auto& part : parts) {
    std::memcpy(worker.output.data + offset + length, part->data(),
                static_cast<size_t>(part->size()));
    length += part->size();
  }
  return length;
}

void SendSharedResult(FakeWorker& worker, uint64_t sequence, uint64_t offset, uint64_t length) {
  v1::WorkerMessage message;
  message.mutable_shm_data()->set_sequence(sequence);
  message.mutable_shm_data()->mutable_region()->set_offset(offset);
  message.mutable_shm_data()->mutable_region()->set_length(length);
  SendWorkerMessage(worker.socket.get(), message);
}

TEST(ShmConnection, BatchesTravelThroughSharedMemoryAndRegionsAreReleasedOnceCopied) {
  Ends ends;
  Connect(&ends);
  auto batch = SharedSizedBatch();
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

  const int64_t length = WriteResult(ends.worker, 4096, *batch);
  SendSharedResult(ends.worker, 7, 4096, static_cast<uint64_t>(length));
  {
    ASSERT_OK_AND_ASSIGN(auto reply, ends.engine->Receive(io::kNoDeadline));
    EXPECT_EQ(reply.sequence, 7u);
    EXPECT_TRUE(reply.batch->Equals(*batch));
  }  // the region went back to the worker as soon as the engine copied it out
  v1::EngineMessage heartbeat;
  heartbeat.mutable_heartbeat()->set_nonce(1);
  ASSERT_OK(ends.engine->SendControl(heartbeat, io::kNoDeadline));
  auto release = ReadEngineMessage(ends.worker.socket.get());
  ASSERT_TRUE(release.has_shm_release());
  ASSERT_EQ(release.shm_release().regions_size(), 1);
  EXPECT_EQ(release.shm_release().regions(0).offset(), 4096u);
  EXPECT_EQ(release.shm_release().regions(0).length(), static_cast<uint64_t>(length));
  EXPECT_TRUE(ReadEngineMessage(ends.worker.socket.get()).has_heartbeat());
}

TEST(ShmConnection, ResultsOutliveTheConnectionAndTheWorker) {
  Ends ends;
  Connect(&ends);
  ASSERT_OK_AND_ASSIGN(auto batch, quiver::testing::MakeSampleBatch(3));
  const int64_t length = WriteResult(ends.worker, 0, *batch);
  SendSharedResult(ends.worker, 0, 0, static_cast<uint64_t>(length));
  ASSERT_OK_AND_ASSIGN(auto reply, ends.engine->Receive(io::kNoDeadline));
  ends.engine.reset();
  ends.worker.Leave();
  EXPECT_TRUE(reply.batch->Equals(*batch));
  EXPECT_OK(reply.batch->ValidateFull());
}

TEST(ShmConnection, NothingTheWorkerDoesToARegionItHandedOverChangesTheResult) {
  // The worker keeps its writable mapping: it rewrites the region and punches
  // a hole in it (MADV_REMOVE, as fallocate's PUNCH_HOLE) after the hand-over.
  Ends ends;
  Connect(&ends);
  ASSERT_OK_AND_ASSIGN(auto batch, quiver::testing::MakeSampleBatch(2));
  const int64_t length = WriteResult(ends.worker, 0, *batch);
  SendSharedResult(ends.worker, 0, 0, static_cast<uint64_t>(length));
  ASSERT_OK_AND_ASSIGN(auto reply, ends.engine->Receive(io::kNoDeadline));
  std::memset(ends.worker.output.data, 0xff, static_cast<size_t>(length));
  EXPECT_OK(reply.batch->ValidateFull());
  EXPECT_TRUE(reply.batch->Equals(*batch));
  ASSERT_EQ(::madvise(ends.worker.output.data, 1 << 20, MADV_REMOVE), 0) << std::strerror(errno);
  EXPECT_OK(reply.batch->ValidateFull());
  EXPECT_TRUE(reply.batch->Equals(*batch));
  // The arena is sealed against shrinking: its pages cannot disappear under the engine.
  EXPECT_EQ(ends.worker.output.data[0], 0);
}

// A batch of one string column whose Arrow IPC stream is about `bytes` long.
std::shared_ptr<arrow::RecordBatch> StringsOfAbout(int64_t bytes, char letter) {
  arrow::StringBuilder builder;
  EXPECT_TRUE(builder.Append(std::string(static_cast<size_t>(bytes), letter)).ok());
  std::shared_ptr<arrow::Array> strings = builder.Finish().ValueOrDie();
  return arrow::RecordBatch::Make(arrow::schema({arrow::field("s", arrow::utf8())}), 1, {strings});
}

TEST(ShmConnection, RecycledCopiesHoldOnlyTheirOwnResultWhateverTheWorkerRewrites) {
  // The engine's copies reuse the memory of dropped ones: a shorter result after
  // a longer one in the same memory, and the same region rewritten by the
  // worker after each hand-over, still give exactly each result, valid.
  Ends ends;
  Connect(&ends, {1 << 20, 1 << 20});
  auto longer = StringsOfAbout(300 << 10, 'l');
  auto shorter = StringsOfAbout(100 << 10, 's');
  for (int round = 0; round < 3; ++round) {
    for (const auto& batch : {longer, shorter}) {
      const uint64_t sequence = static_cast<uint64_t>(round);
      const int64_t length = WriteResult(ends.worker, 0, *batch);
      SendSharedResult(ends.worker, sequence, 0, static_cast<uint64_t>(length));
      ASSERT_OK_AND_ASSIGN(auto reply, ends.engine->Receive(io::kNoDeadline));
      std::memset(ends.worker.output.data, 'X', 400 << 10);  // after the hand-over
      ASSERT_OK(reply.batch->ValidateFull());
      EXPECT_TRUE(reply.batch->Equals(*batch)) << "round " << round;
      EXPECT_EQ(reply.batch->column(0)->length(), 1);
    }  // each reply dropped: its memory serves the next copy
  }
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
  Connect(&ends, {1 << 20, 1 << 20});
  const BadRegion& bad = GetParam();
  SendSharedResult(ends.worker, 3, bad.offset, bad.length);
  auto reply = ends.engine->Receive(io::kNoDeadline);
  ASSERT_FALSE(reply.ok());
  EXPECT_NE(reply.status().message().find(bad.says), std::string::npos)
      << reply.status().ToString();
  EXPECT_NE(reply.status().message().find("batch 3"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(
    Regions, ShmBadRegion,
    ::testing::Values(BadRegion{"past_the_end", (1 << 20) - 64, 128, "outside the output arena"},
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
  const int64_t length = WriteResult(ends.worker, 0, *batch);
  std::memset(ends.worker.output.data + length / 2, 0xff, static_cast<size_t>(length - length / 2));
  SendSharedResult(ends.worker, 0, 0, static_cast<uint64_t>(length));
  auto reply = ends.engine->Receive(io::kNoDeadline);
  if (reply.ok()) {
    EXPECT_FALSE(reply->batch->ValidateFull().ok());  // what WorkerExecution checks next
  } else {
    EXPECT_NE(reply.status().message().find("batch 0"), std::string::npos);
  }
}

TEST(ShmConnection, ASmallBatchTravelsInline) {
  Ends ends;
  Connect(&ends);
  ASSERT_OK_AND_ASSIGN(auto batch, quiver::testing::MakeSampleBatch(2));
  ASSERT_OK(ends.engine->SendBatch(4, *batch, io::kNoDeadline));
  auto frame = ReadFrame(ends.worker.socket.get());
  EXPECT_EQ(frame.kind, protocol::FrameKind::kData) << "the socket is faster for small batches";
  EXPECT_EQ(frame.sequence, 4u);
}

TEST(ShmConnection, ABatchWithoutRoomTravelsInlineUntilTheWorkerAnswers) {
  Ends ends;
  auto batch = SharedSizedBatch();
  ASSERT_OK_AND_ASSIGN(auto parts, protocol::EncodeBatchStream(*batch));
  int64_t length = 0;
  for (const auto& part : parts) length += part->size();
  Connect(&ends, {length + 64, 1 << 20});  // room for one batch
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
  auto setup = std::async(std::launch::async, [&] {
    return engine->Setup({4096, 4096}, io::kNoDeadline);
  });
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
