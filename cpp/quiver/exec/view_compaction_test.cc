#include "quiver/exec/view_compaction.h"

#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <arrow/array/array_base.h>
#include <arrow/array/builder_binary.h>
#include <arrow/array/util.h>
#include <arrow/buffer.h>
#include <arrow/memory_pool.h>
#include <arrow/record_batch.h>
#include <arrow/type.h>

#include "quiver/protocol/batch_codec.h"
#include "quiver/testing/status_matchers.h"

namespace quiver::exec {
namespace {

// 1,000 rows: every 7th null, every 5th a short (inlined) value, the rest 100
// characters that differ row by row.
std::shared_ptr<arrow::Array> Strings() {
  arrow::StringViewBuilder builder;
  for (int i = 0; i < 1000; ++i) {
    if (i % 7 == 0) {
      EXPECT_OK(builder.AppendNull());
    } else if (i % 5 == 0) {
      EXPECT_OK(builder.Append("short " + std::to_string(i)));
    } else {
      EXPECT_OK(builder.Append(std::to_string(i) + std::string(100, 'x')));
    }
  }
  return builder.Finish().ValueOrDie();
}

int64_t EncodedBytes(const arrow::RecordBatch& batch) {
  int64_t total = 0;
  for (const auto& buffer : protocol::EncodeBatchStream(batch).ValueOrDie()) {
    total += buffer->size();
  }
  return total;
}

int64_t DataBufferBytes(const arrow::Array& array) {
  int64_t total = 0;
  for (size_t i = 2; i < array.data()->buffers.size(); ++i) {
    total += array.data()->buffers[i]->size();
  }
  return total;
}

TEST(ViewCompaction, ASliceKeepsOnlyTheBytesItsViewsReference) {
  auto slice = Strings()->Slice(500, 20);
  ASSERT_OK_AND_ASSIGN(auto compacted, CompactViewArray(slice, arrow::default_memory_pool()));
  ASSERT_OK(compacted->ValidateFull());
  EXPECT_TRUE(compacted->Equals(*slice));
  EXPECT_EQ(compacted->null_count(), slice->null_count());
  // 20 rows: 2 or 3 null, 4 short, the rest 103 characters each.
  EXPECT_LE(DataBufferBytes(*compacted), 20 * 103);
  EXPECT_GT(DataBufferBytes(*slice), 50 * 1000);
}

TEST(ViewCompaction, TheSentBatchShrinksWithTheSlice) {
  auto column = Strings();
  auto schema = arrow::schema({arrow::field("s", arrow::utf8_view())});
  auto slice = arrow::RecordBatch::Make(schema, 1000, {column})->Slice(10, 10);
  ASSERT_OK_AND_ASSIGN(auto compacted, CompactViewColumns(slice, arrow::default_memory_pool()));
  EXPECT_GT(EncodedBytes(*slice), 50 * 1000);
  EXPECT_LT(EncodedBytes(*compacted), 4 * 1000);
  EXPECT_TRUE(compacted->Equals(*slice));
}

TEST(ViewCompaction, AnArrayThatReferencesMostOfItsBytesIsLeftAsItIs) {
  auto whole = Strings();
  ASSERT_OK_AND_ASSIGN(auto same, CompactViewArray(whole, arrow::default_memory_pool()));
  EXPECT_EQ(same, whole);
  auto batch = arrow::RecordBatch::Make(arrow::schema({arrow::field("s", arrow::utf8_view())}),
                                        1000, {whole});
  ASSERT_OK_AND_ASSIGN(auto same_batch, CompactViewColumns(batch, arrow::default_memory_pool()));
  EXPECT_EQ(same_batch, batch);
}

TEST(ViewCompaction, AViewOutsideItsBufferIsRefusedNotRead) {
  auto slice = Strings()->Slice(1, 3);  // rows 1-3: long values
  auto data = slice->data()->Copy();
  ASSERT_OK_AND_ASSIGN(auto views, arrow::AllocateBuffer(data->buffers[1]->size()));
  std::memcpy(views->mutable_data(), data->buffers[1]->data(), data->buffers[1]->size());
  auto* view = views->mutable_data_as<arrow::BinaryViewType::c_type>() + data->offset + 1;
  view->ref.buffer_index = 0;
  view->ref.offset = static_cast<int32_t>(data->buffers[2]->size()) - 10;  // 93 bytes past it
  data->buffers[1] = std::move(views);
  auto status = CompactViewArray(arrow::MakeArray(data), arrow::default_memory_pool()).status();
  EXPECT_TRUE(status.IsInvalid()) << status.ToString();
  EXPECT_NE(status.message().find("row 1 of a string_view column"), std::string::npos)
      << status.ToString();
}

}  // namespace
}  // namespace quiver::exec
