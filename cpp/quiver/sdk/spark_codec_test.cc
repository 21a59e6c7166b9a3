#include "quiver/sdk/spark_codec.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <arrow/builder.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/writer.h>

#include "quiver/protocol/batch_codec.h"
#include "quiver/testing/status_matchers.h"

namespace quiver::sdk {
namespace {

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

std::shared_ptr<arrow::Buffer> SchemaMessage() {
  return arrow::Buffer::FromString(*protocol::SerializeSchema(*Numbers(0)->schema()));
}

std::vector<int64_t> Rows(const std::vector<std::shared_ptr<arrow::RecordBatch>>& batches) {
  std::vector<int64_t> rows;
  for (const auto& batch : batches) rows.push_back(batch->num_rows());
  return rows;
}

// Splits `bytes` into pieces of `size` bytes, as gRPC slices would hold them.
std::vector<std::shared_ptr<arrow::Buffer>> Pieces(const std::string& bytes, size_t size) {
  std::vector<std::shared_ptr<arrow::Buffer>> pieces;
  for (size_t at = 0; at < bytes.size(); at += size) {
    pieces.push_back(arrow::Buffer::FromString(bytes.substr(at, size)));
  }
  return pieces;
}

TEST(SparkCodec, AStreamOfSeveralBatchesIsThatManyBatches) {
  const std::string stream = Stream({Numbers(2), Numbers(5)});
  ASSERT_OK_AND_ASSIGN(auto batches, DecodeSparkBatches(Pieces(stream, 7), SchemaMessage()));
  EXPECT_EQ(Rows(batches), (std::vector<int64_t>{2, 5}));
}

TEST(SparkCodec, ABareRecordBatchMessageIsReadAgainstTheInputSchema) {
  const std::string stream = Stream({Numbers(3)});
  // A stream is the schema message, the batch's message, the end-of-stream marker.
  const std::string bare =
      stream.substr(SchemaMessage()->size(), stream.size() - SchemaMessage()->size() - 8);
  ASSERT_OK_AND_ASSIGN(auto batches, DecodeSparkBatches(Pieces(bare, 1 << 20), SchemaMessage()));
  ASSERT_EQ(Rows(batches), (std::vector<int64_t>{3}));
  EXPECT_TRUE(batches[0]->Equals(*Numbers(3)));
}

TEST(SparkCodec, WhatIsNotABatchIsRefusedWithTheReason) {
  auto short_body = DecodeSparkBatches(Pieces("not", 8), SchemaMessage());
  ASSERT_FALSE(short_body.ok());
  EXPECT_NE(short_body.status().message().find("too short"), std::string::npos);
  EXPECT_FALSE(DecodeSparkBatches(Pieces(std::string(64, '\xab'), 64), SchemaMessage()).ok());
  const std::string only_schema = Stream({Numbers(1)}).substr(0, SchemaMessage()->size());
  auto empty = DecodeSparkBatches(Pieces(only_schema, 64), SchemaMessage());
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("no record batch"), std::string::npos);
}

TEST(SparkCodec, DataRequestsAreReadInPlaceAndControlsThroughProtobuf) {
  sparkpb::UdfRequest data;
  data.mutable_data()->set_data(Stream({Numbers(4)}));
  grpc::Slice slice(data.SerializeAsString());
  ASSERT_OK_AND_ASSIGN(SparkRequest request, DecodeSparkRequest(grpc::ByteBuffer(&slice, 1)));
  EXPECT_FALSE(request.control.has_value());
  EXPECT_EQ(request.data_size, data.data().data().size());
  ASSERT_OK_AND_ASSIGN(auto batches, DecodeSparkBatches(request.data, SchemaMessage()));
  EXPECT_EQ(Rows(batches), (std::vector<int64_t>{4}));

  sparkpb::UdfRequest cancel;
  cancel.mutable_control()->mutable_cancel()->set_reason("enough");
  grpc::Slice cancel_slice(cancel.SerializeAsString());
  ASSERT_OK_AND_ASSIGN(request, DecodeSparkRequest(grpc::ByteBuffer(&cancel_slice, 1)));
  ASSERT_TRUE(request.control.has_value());
  EXPECT_EQ(request.control->cancel().reason(), "enough");

  grpc::Slice garbage(std::string("\x12\xff\xff", 3));
  EXPECT_FALSE(DecodeSparkRequest(grpc::ByteBuffer(&garbage, 1)).ok());
  grpc::Slice nothing(std::string{});
  EXPECT_FALSE(DecodeSparkRequest(grpc::ByteBuffer(&nothing, 1)).ok());
}

TEST(SparkCodec, AResultIsTheProtobufEncodingOfDataResponse) {
  uint64_t bytes = 0;
  ASSERT_OK_AND_ASSIGN(grpc::ByteBuffer buffer, EncodeSparkData(*Numbers(6), &bytes));
  grpc::Slice whole;
  ASSERT_TRUE(buffer.DumpToSingleSlice(&whole).ok());
  sparkpb::UdfResponse response;
  ASSERT_TRUE(response.ParseFromArray(whole.begin(), static_cast<int>(whole.size())));
  ASSERT_TRUE(response.has_data());
  EXPECT_EQ(response.data().data().size(), bytes);
  ASSERT_OK_AND_ASSIGN(
      auto batch, protocol::DecodeBatchStream(arrow::Buffer::FromString(response.data().data())));
  EXPECT_TRUE(batch->Equals(*Numbers(6)));
}

}  // namespace
}  // namespace quiver::sdk
