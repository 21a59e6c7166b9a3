#include "quiver/grpc_wire/data_envelope.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <arrow/builder.h>
#include <arrow/type.h>

#include "quiver/testing/status_matchers.h"

namespace quiver::grpc_wire {
namespace {

std::shared_ptr<arrow::RecordBatch> Numbers(int rows) {
  arrow::Int64Builder builder;
  for (int i = 0; i < rows; ++i) EXPECT_OK(builder.Append(i));
  return arrow::RecordBatch::Make(arrow::schema({arrow::field("n", arrow::int64())}), rows,
                                  {*builder.Finish()});
}

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  std::string bytes;
  for (const auto& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return bytes;
}

std::vector<grpc::Slice> OneSlice(const std::string& bytes) { return {grpc::Slice(bytes)}; }

int64_t IpcBytes(const DataEnvelope& envelope) {
  int64_t size = 0;
  for (const auto& piece : envelope.arrow_ipc) size += piece->size();
  return size;
}

TEST(DataEnvelope, RoundTripsSequenceAndArrowBytes) {
  ASSERT_OK_AND_ASSIGN(auto buffer, EncodeDataEnvelope(42, *Numbers(10)));
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(buffer.Dump(&slices).ok());
  ASSERT_TRUE(IsDataEnvelope(slices));
  ASSERT_OK_AND_ASSIGN(DataEnvelope envelope, DecodeDataEnvelope(std::move(slices)));
  EXPECT_EQ(envelope.sequence, 42u);
  EXPECT_GT(IpcBytes(envelope), 10 * 8);
}

// A peer built with a newer protocol may add fields; protobuf skips them, so must we.
TEST(DataEnvelope, SkipsUnknownFieldsInsideAndAfterData) {
  ASSERT_OK_AND_ASSIGN(auto buffer, EncodeDataEnvelope(7, *Numbers(3)));
  std::string bytes = Flatten(buffer);
  ASSERT_OK_AND_ASSIGN(DataEnvelope expected, DecodeDataEnvelope(OneSlice(bytes)));
  // After Data: field 9 as a varint (tag 9<<3|0 = 72) and field 10 as bytes.
  bytes += std::string("\x48\x05\x52\x02xy", 6);
  ASSERT_OK_AND_ASSIGN(DataEnvelope envelope, DecodeDataEnvelope(OneSlice(bytes)));
  EXPECT_EQ(envelope.sequence, 7u);
  EXPECT_EQ(IpcBytes(envelope), IpcBytes(expected));
}

TEST(DataEnvelope, RefusesADataFieldThatOverrunsItsLength) {
  // data{length 3: sequence=1, then arrow_ipc of 5 bytes that run past the 3}.
  const std::string bytes("\x1a\x03\x08\x01\x12\x05hello", 11);
  EXPECT_FALSE(DecodeDataEnvelope(OneSlice(bytes)).ok());
}

TEST(DataEnvelope, RefusesTruncatedAndForeignMessages) {
  ASSERT_OK_AND_ASSIGN(auto buffer, EncodeDataEnvelope(1, *Numbers(5)));
  const std::string bytes = Flatten(buffer);
  EXPECT_FALSE(DecodeDataEnvelope(OneSlice(bytes.substr(0, bytes.size() - 3))).ok());
  EXPECT_FALSE(IsDataEnvelope(OneSlice("\x0a\x00")));
  EXPECT_FALSE(IsDataEnvelope({}));
  EXPECT_FALSE(DecodeDataEnvelope(OneSlice(std::string("\x0a\x00", 2))).ok());
}

}  // namespace
}  // namespace quiver::grpc_wire
