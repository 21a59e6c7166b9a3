#include "quiver/protocol/batch_codec.h"

#include <set>
#include <string>

#include <gtest/gtest.h>

#include <arrow/array.h>
#include <arrow/array/util.h>
#include <arrow/builder.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/writer.h>
#include <arrow/type.h>

#include "quiver/io/chunked_input_stream.h"
#include "quiver/testing/sample_data.h"
#include "quiver/testing/status_matchers.h"

namespace quiver::protocol {
namespace {

std::shared_ptr<arrow::Buffer> Join(const std::vector<std::shared_ptr<arrow::Buffer>>& buffers) {
  std::string bytes;
  for (const auto& buffer : buffers) bytes += buffer->ToString();
  return arrow::Buffer::FromString(std::move(bytes));
}

std::shared_ptr<arrow::Array> LargeStrings(int64_t rows) {
  arrow::StringBuilder builder;
  for (int64_t i = 0; i < rows; ++i) {
    EXPECT_OK(builder.Append(std::string(100, static_cast<char>('a' + i % 26))));
  }
  return builder.Finish().ValueOrDie();
}

TEST(BatchCodec, EncodingReferencesTheBatchBuffersWithoutCopyingThem) {
  auto strings = LargeStrings(1000);
  auto batch = arrow::RecordBatch::Make(arrow::schema({arrow::field("data", arrow::utf8())}), 1000,
                                        {strings});
  ASSERT_OK_AND_ASSIGN(auto buffers, EncodeBatchStream(*batch));
  std::set<const uint8_t*> addresses;
  for (const auto& buffer : buffers) addresses.insert(buffer->data());
  // The offsets and the 100 KB of characters go out from where they live.
  EXPECT_TRUE(addresses.count(strings->data()->buffers[1]->data()));
  EXPECT_TRUE(addresses.count(strings->data()->buffers[2]->data()));
}

TEST(BatchCodec, SlicedBatchKeepsItsValueBytesInPlace) {
  auto strings = LargeStrings(1000);
  auto batch = arrow::RecordBatch::Make(arrow::schema({arrow::field("data", arrow::utf8())}), 1000,
                                        {strings})
                   ->Slice(100, 50);
  ASSERT_OK_AND_ASSIGN(auto buffers, EncodeBatchStream(*batch));
  ASSERT_OK_AND_ASSIGN(auto decoded, DecodeBatchStream(Join(buffers)));
  EXPECT_TRUE(decoded->Equals(*batch));
  const uint8_t* characters = strings->data()->buffers[2]->data();
  bool referenced = false;
  for (const auto& buffer : buffers) {
    referenced |= buffer->data() >= characters &&
                  buffer->data() < characters + strings->data()->buffers[2]->size();
  }
  EXPECT_TRUE(referenced);
}

TEST(BatchCodec, RoundTripsStringsNullsDictionariesAndLists) {
  for (int index = 0; index < 3; ++index) {
    ASSERT_OK_AND_ASSIGN(auto batch, quiver::testing::MakeSampleBatch(index));
    ASSERT_OK_AND_ASSIGN(auto buffers, EncodeBatchStream(*batch));
    ASSERT_OK_AND_ASSIGN(auto decoded, DecodeBatchStream(Join(buffers)));
    EXPECT_TRUE(decoded->Equals(*batch)) << decoded->ToString();
  }
}

TEST(BatchCodec, DecodedColumnsAreSlicesOfTheBody) {
  auto batch = arrow::RecordBatch::Make(arrow::schema({arrow::field("data", arrow::utf8())}), 1000,
                                        {LargeStrings(1000)});
  ASSERT_OK_AND_ASSIGN(auto buffers, EncodeBatchStream(*batch));
  auto body = Join(buffers);
  ASSERT_OK_AND_ASSIGN(auto decoded, DecodeBatchStream(body));
  const uint8_t* characters = decoded->column(0)->data()->buffers[2]->data();
  EXPECT_GE(characters, body->data());
  EXPECT_LT(characters, body->data() + body->size());
}

TEST(BatchCodec, DecodesFromAChunkedStream) {
  ASSERT_OK_AND_ASSIGN(auto batch, quiver::testing::MakeSampleBatch(1));
  ASSERT_OK_AND_ASSIGN(auto buffers, EncodeBatchStream(*batch));
  auto stream = std::make_shared<io::ChunkedInputStream>();
  for (const auto& buffer : buffers) ASSERT_OK(stream->Append(buffer));
  stream->Finish();
  ASSERT_OK_AND_ASSIGN(auto decoded, DecodeBatchStream(stream));
  EXPECT_TRUE(decoded->Equals(*batch));
}

TEST(BatchCodec, MisalignedBodiesAreDecodedIntoAlignedBuffers) {
  arrow::Int64Builder builder;
  for (int64_t i = 0; i < 100; ++i) ASSERT_OK(builder.Append(i * 1000));
  auto batch = arrow::RecordBatch::Make(arrow::schema({arrow::field("n", arrow::int64())}), 100,
                                        {*builder.Finish()});
  ASSERT_OK_AND_ASSIGN(auto buffers, EncodeBatchStream(*batch));
  // The same bytes, starting 3 bytes into a buffer: every Arrow buffer is misaligned.
  auto shifted = arrow::Buffer::FromString("xyz" + Join(buffers)->ToString());
  ASSERT_OK_AND_ASSIGN(auto decoded, DecodeBatchStream(arrow::SliceBuffer(shifted, 3)));
  EXPECT_TRUE(decoded->Equals(*batch));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(decoded->column(0)->data()->buffers[1]->data()) % 8, 0u);
}

TEST(BatchCodec, BodyWithoutABatchIsAnError) {
  auto schema_only = arrow::Buffer::FromString("");
  EXPECT_FALSE(DecodeBatchStream(schema_only).ok());
  ASSERT_OK_AND_ASSIGN(auto batch, quiver::testing::MakeSampleBatch(0));
  ASSERT_OK_AND_ASSIGN(auto buffers, EncodeBatchStream(*batch));
  auto cut = arrow::SliceBuffer(Join(buffers), 0, 200);
  EXPECT_FALSE(DecodeBatchStream(cut).ok());
}

// The bytes Arrow's own stream writer produces for `batch`.
std::string WriterBytes(const arrow::RecordBatch& batch) {
  auto sink = arrow::io::BufferOutputStream::Create().ValueOrDie();
  auto writer = arrow::ipc::MakeStreamWriter(sink, batch.schema()).ValueOrDie();
  EXPECT_OK(writer->WriteRecordBatch(batch));
  EXPECT_OK(writer->Close());
  return sink->Finish().ValueOrDie()->ToString();
}

TEST(BatchCodec, BodiesAreTheBytesOfArrowsStreamWriter) {
  auto strings = arrow::RecordBatch::Make(arrow::schema({arrow::field("data", arrow::utf8())}),
                                          1000, {LargeStrings(1000)});
  for (int round = 0; round < 2; ++round) {  // the second encodes from the cached schema
    ASSERT_OK_AND_ASSIGN(auto buffers, EncodeBatchStream(*strings));
    EXPECT_EQ(Join(buffers)->ToString(), WriterBytes(*strings));
    ASSERT_OK_AND_ASSIGN(auto sliced, EncodeBatchStream(*strings->Slice(10, 3)));
    EXPECT_EQ(Join(sliced)->ToString(), WriterBytes(*strings->Slice(10, 3)));
    ASSERT_OK_AND_ASSIGN(auto sample, quiver::testing::MakeSampleBatch(round));
    ASSERT_OK_AND_ASSIGN(auto with_dictionary, EncodeBatchStream(*sample));
    EXPECT_EQ(Join(with_dictionary)->ToString(), WriterBytes(*sample));
  }
}

TEST(BatchCodec, TheSchemaMessageIsSerializedOncePerSchema) {
  auto batch = arrow::RecordBatch::Make(arrow::schema({arrow::field("data", arrow::utf8())}), 10,
                                        {LargeStrings(10)});
  ASSERT_OK_AND_ASSIGN(auto first, EncodeBatchStream(*batch));
  ASSERT_OK_AND_ASSIGN(auto second, EncodeBatchStream(*batch->Slice(2, 5)));
  // An equal schema in another object finds the same message too.
  auto twin = arrow::RecordBatch::Make(arrow::schema({arrow::field("data", arrow::utf8())}), 10,
                                       batch->columns());
  ASSERT_OK_AND_ASSIGN(auto third, EncodeBatchStream(*twin));
  EXPECT_EQ(first.front()->data(), second.front()->data());
  EXPECT_EQ(first.front()->data(), third.front()->data());
  // Another schema gets its own message.
  auto renamed = arrow::RecordBatch::Make(arrow::schema({arrow::field("other", arrow::utf8())}), 10,
                                          batch->columns());
  ASSERT_OK_AND_ASSIGN(auto fourth, EncodeBatchStream(*renamed));
  EXPECT_NE(first.front()->data(), fourth.front()->data());
  ASSERT_OK_AND_ASSIGN(auto decoded, DecodeBatchStream(Join(fourth)));
  EXPECT_EQ(decoded->schema()->field(0)->name(), "other");
}

TEST(BatchCodec, BodiesWithAKnownSchemaDecodeLikeAnyOther) {
  auto schema = arrow::schema({arrow::field("data", arrow::utf8())});
  auto batch = arrow::RecordBatch::Make(schema, 1000, {LargeStrings(1000)});
  ASSERT_OK_AND_ASSIGN(auto first,
                       DecodeBatchStream(arrow::Buffer::FromString(WriterBytes(*batch))));
  for (int64_t offset : {0, 7, 500}) {
    auto part = batch->Slice(offset, 20);
    ASSERT_OK_AND_ASSIGN(auto decoded,
                         DecodeBatchStream(arrow::Buffer::FromString(WriterBytes(*part))));
    EXPECT_TRUE(decoded->Equals(*part));
    EXPECT_EQ(decoded->schema(), first->schema());  // parsed once, then reused
  }
  // A field of the same name and another type is a different schema message.
  auto numbers = arrow::RecordBatch::Make(arrow::schema({arrow::field("data", arrow::int64())}), 0,
                                          {arrow::MakeArrayOfNull(arrow::int64(), 0).ValueOrDie()});
  ASSERT_OK_AND_ASSIGN(auto other,
                       DecodeBatchStream(arrow::Buffer::FromString(WriterBytes(*numbers))));
  EXPECT_TRUE(other->schema()->field(0)->type()->Equals(arrow::int64()));
}

TEST(BatchCodec, AKnownSchemaFollowedByTwoBatchesIsStillAnError) {
  auto schema = arrow::schema({arrow::field("data", arrow::utf8())});
  auto batch = arrow::RecordBatch::Make(schema, 3, {LargeStrings(3)});
  ASSERT_OK(DecodeBatchStream(arrow::Buffer::FromString(WriterBytes(*batch))).status());
  auto sink = arrow::io::BufferOutputStream::Create().ValueOrDie();
  auto writer = arrow::ipc::MakeStreamWriter(sink, schema).ValueOrDie();
  ASSERT_OK(writer->WriteRecordBatch(*batch));
  ASSERT_OK(writer->WriteRecordBatch(*batch));
  ASSERT_OK(writer->Close());
  auto two = DecodeBatchStream(sink->Finish().ValueOrDie());
  ASSERT_FALSE(two.ok());
  EXPECT_NE(two.status().message().find("more than one record batch"), std::string::npos);
  // A known schema and a cut batch: the error of the general reader.
  std::string cut = WriterBytes(*batch);
  cut.resize(cut.size() - 40);
  EXPECT_FALSE(DecodeBatchStream(arrow::Buffer::FromString(cut)).ok());
}

TEST(BatchCodec, SchemasRoundTrip) {
  auto schema = quiver::testing::SampleSchema();
  ASSERT_OK_AND_ASSIGN(auto bytes, SerializeSchema(*schema));
  ASSERT_OK_AND_ASSIGN(auto decoded, DeserializeSchema(bytes));
  EXPECT_TRUE(decoded->Equals(*schema));
  EXPECT_FALSE(DeserializeSchema("garbage").ok());
}

}  // namespace
}  // namespace quiver::protocol
