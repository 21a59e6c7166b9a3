#include "quiver/transport/grpc/grpc_message_codec.h"

#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <arrow/builder.h>
#include <arrow/type.h>

#include "quiver/protocol/batch_codec.h"
#include "quiver/testing/sample_data.h"
#include "quiver/testing/status_matchers.h"

namespace quiver::transport::grpc_transport {
namespace {

std::shared_ptr<arrow::RecordBatch> LargeBatch() {
  arrow::StringBuilder builder;
  for (int i = 0; i < 2000; ++i) EXPECT_OK(builder.Append(std::string(100, 'a' + i % 26)));
  return arrow::RecordBatch::Make(arrow::schema({arrow::field("data", arrow::utf8())}), 2000,
                                  {*builder.Finish()});
}

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  std::string bytes;
  for (const auto& slice : slices)
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  return bytes;
}

// Splits `bytes` into slices of `size` bytes, as a network read might.
grpc::ByteBuffer Split(const std::string& bytes, size_t size) {
  std::vector<grpc::Slice> slices;
  for (size_t offset = 0; offset < bytes.size(); offset += size) {
    slices.emplace_back(bytes.substr(offset, size));
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

TEST(GrpcMessageCodec, DataSlicesReferenceTheArrowBuffers) {
  auto batch = LargeBatch();
  ASSERT_OK_AND_ASSIGN(auto buffer, EncodeDataMessage(9, *batch));
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(buffer.Dump(&slices).ok());
  std::set<const uint8_t*> addresses;
  for (const auto& slice : slices) addresses.insert(slice.begin());
  EXPECT_TRUE(addresses.count(batch->column(0)->data()->buffers[1]->data()));
  EXPECT_TRUE(addresses.count(batch->column(0)->data()->buffers[2]->data()))
      << "the 200 KB of characters must leave from the batch's own buffer";
}

TEST(GrpcMessageCodec, ArrowBytesStartAtAMultipleOfEight) {
  auto batch = LargeBatch();
  for (uint64_t sequence : {0ull, 1ull, 300ull, 1ull << 40}) {
    ASSERT_OK_AND_ASSIGN(auto buffer, EncodeDataMessage(sequence, *batch));
    std::vector<grpc::Slice> slices;
    ASSERT_TRUE(buffer.Dump(&slices).ok());
    EXPECT_EQ(slices.front().size() % 8, 0u) << "sequence " << sequence;
    v1::EngineMessage message;
    ASSERT_TRUE(message.ParseFromString(Flatten(buffer)));
    EXPECT_EQ(message.data().sequence(), sequence);
  }
}

TEST(GrpcMessageCodec, HandWrittenDataIsValidProtobuf) {
  auto batch = LargeBatch();
  ASSERT_OK_AND_ASSIGN(auto buffer, EncodeDataMessage(300, *batch));
  v1::EngineMessage message;
  ASSERT_TRUE(message.ParseFromString(Flatten(buffer)));
  ASSERT_TRUE(message.has_data());
  EXPECT_EQ(message.data().sequence(), 300u);
  ASSERT_OK_AND_ASSIGN(auto decoded, protocol::DecodeBatchStream(
                                         arrow::Buffer::FromString(message.data().arrow_ipc())));
  EXPECT_TRUE(decoded->Equals(*batch));
}

TEST(GrpcMessageCodec, DecodesDataSpreadOverManySlices) {
  ASSERT_OK_AND_ASSIGN(auto batch, quiver::testing::MakeSampleBatch(3));
  ASSERT_OK_AND_ASSIGN(auto body, protocol::EncodeBatchStream(*batch));
  std::string ipc;
  for (const auto& piece : body) ipc += piece->ToString();
  v1::WorkerMessage message;
  message.mutable_data()->set_sequence(77);
  message.mutable_data()->set_arrow_ipc(ipc);
  for (size_t size : {1u, 7u, 64u, 100000u}) {
    DecodeCopies copies;
    ASSERT_OK_AND_ASSIGN(auto reply,
                         DecodeWorkerMessage(Split(message.SerializeAsString(), size), &copies));
    EXPECT_FALSE(reply.control.has_value());
    EXPECT_EQ(reply.sequence, 77u);
    EXPECT_TRUE(reply.batch->Equals(*batch)) << "slices of " << size << " bytes";
    if (size == 100000u) {
      // One slice: only the 8-byte length prefixes of the IPC messages are read
      // into Arrow's own memory; no metadata or body byte is copied.
      EXPECT_LE(copies.bytes_copied, 8 * 4);
    }
  }
}

TEST(GrpcMessageCodec, DecodesControlMessages) {
  v1::WorkerMessage message;
  message.mutable_finish_response()->mutable_metrics()->set_batches(5);
  DecodeCopies copies;
  ASSERT_OK_AND_ASSIGN(auto reply,
                       DecodeWorkerMessage(Split(message.SerializeAsString(), 3), &copies));
  ASSERT_TRUE(reply.control.has_value());
  EXPECT_EQ(reply.control->finish_response().metrics().batches(), 5u);
}

TEST(GrpcMessageCodec, TruncatedDataIsAnError) {
  ASSERT_OK_AND_ASSIGN(auto batch, quiver::testing::MakeSampleBatch(0));
  ASSERT_OK_AND_ASSIGN(auto body, protocol::EncodeBatchStream(*batch));
  v1::WorkerMessage message;
  message.mutable_data()->set_arrow_ipc(body[0]->ToString());
  std::string bytes = message.SerializeAsString();
  DecodeCopies copies;
  EXPECT_FALSE(DecodeWorkerMessage(Split(bytes.substr(0, bytes.size() / 2), 5), &copies).ok());
}

}  // namespace
}  // namespace quiver::transport::grpc_transport
