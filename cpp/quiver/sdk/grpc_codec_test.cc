#include "quiver/sdk/grpc_codec.h"

#include <gtest/gtest.h>

#include <arrow/builder.h>

#include "quiver/protocol/batch_codec.h"
#include "quiver/testing/status_matchers.h"

namespace quiver::sdk {
namespace {

std::shared_ptr<arrow::RecordBatch> Numbers(int rows) {
  arrow::Int64Builder builder;
  for (int i = 0; i < rows; ++i) EXPECT_OK(builder.Append(i * 7));
  return arrow::RecordBatch::Make(arrow::schema({arrow::field("n", arrow::int64())}), rows,
                                  {*builder.Finish()});
}

// WorkerMessage.data and EngineMessage.data share field number 3, so a result
// the worker encodes decodes as a request: the round trip checks both halves.
TEST(GrpcCodec, DataRoundTripsWithTheArrowBytesAligned) {
  for (uint64_t sequence : {uint64_t{0}, uint64_t{300}, uint64_t{1} << 40}) {
    const auto batch = Numbers(100);
    ASSERT_OK_AND_ASSIGN(grpc::ByteBuffer buffer, EncodeWorkerData(sequence, *batch));
    std::vector<grpc::Slice> slices;
    ASSERT_TRUE(buffer.Dump(&slices).ok());
    EXPECT_EQ(slices.front().size() % 8, 0u) << "prefix of sequence " << sequence;
    ASSERT_OK_AND_ASSIGN(EngineRequest request, DecodeEngineRequest(buffer));
    ASSERT_FALSE(request.control.has_value());
    EXPECT_EQ(request.sequence, sequence);
    ASSERT_OK_AND_ASSIGN(auto decoded, protocol::DecodeBatchStream(request.body));
    EXPECT_TRUE(decoded->Equals(*batch));
  }
}

TEST(GrpcCodec, AcceptsAnUnpaddedDataMessageAndControlMessages) {
  const auto batch = Numbers(3);
  ASSERT_OK_AND_ASSIGN(auto body, protocol::EncodeBatchStream(*batch));
  std::string ipc;
  for (const auto& piece : body) ipc += piece->ToString();
  v1::EngineMessage message;
  message.mutable_data()->set_arrow_ipc(ipc);
  message.mutable_data()->set_sequence(9);
  grpc::Slice slice(message.SerializeAsString());
  ASSERT_OK_AND_ASSIGN(EngineRequest request, DecodeEngineRequest(grpc::ByteBuffer(&slice, 1)));
  EXPECT_EQ(request.sequence, 9u);
  ASSERT_OK_AND_ASSIGN(auto decoded, protocol::DecodeBatchStream(request.body));
  EXPECT_TRUE(decoded->Equals(*batch));

  v1::EngineMessage finish;
  finish.mutable_finish();
  grpc::Slice finish_slice(finish.SerializeAsString());
  ASSERT_OK_AND_ASSIGN(request, DecodeEngineRequest(grpc::ByteBuffer(&finish_slice, 1)));
  ASSERT_TRUE(request.control.has_value());
  EXPECT_TRUE(request.control->has_finish());

  grpc::Slice garbage(std::string("\x1a\x7f\x08", 3));  // Data whose length overruns
  EXPECT_FALSE(DecodeEngineRequest(grpc::ByteBuffer(&garbage, 1)).ok());
}

}  // namespace
}  // namespace quiver::sdk
