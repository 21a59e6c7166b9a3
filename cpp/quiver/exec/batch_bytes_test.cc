#include "quiver/exec/batch_bytes.h"

#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <arrow/array/builder_binary.h>
#include <arrow/builder.h>
#include <arrow/type.h>

#include "quiver/testing/status_matchers.h"

namespace quiver::exec {
namespace {

// One string column whose row i holds `lengths[i]` characters.
std::shared_ptr<arrow::RecordBatch> Strings(const std::vector<int64_t>& lengths) {
  arrow::StringBuilder builder;
  for (int64_t length : lengths) EXPECT_OK(builder.Append(std::string(length, 'x')));
  return arrow::RecordBatch::Make(arrow::schema({arrow::field("s", arrow::utf8())}),
                                  static_cast<int64_t>(lengths.size()), {*builder.Finish()});
}

// The pieces CapBatchBytes makes of `batch`, as row counts.
std::vector<int64_t> Pieces(const std::shared_ptr<arrow::RecordBatch>& batch, int64_t max_bytes) {
  auto reader = CapBatchBytes(*arrow::RecordBatchReader::Make({batch}), {0}, max_bytes);
  std::vector<int64_t> rows;
  while (true) {
    std::shared_ptr<arrow::RecordBatch> piece;
    EXPECT_OK(reader->ReadNext(&piece));
    if (piece == nullptr) return rows;
    // Over the cap only as a single row.
    if (piece->num_rows() > 1) {
      EXPECT_LE(BatchBytes(*piece).ValueOrDie(), max_bytes);
    }
    rows.push_back(piece->num_rows());
  }
}

TEST(BatchBytes, ASlicedColumnCountsOnlyItsRows) {
  auto batch = Strings(std::vector<int64_t>(100, 1000));
  ASSERT_OK_AND_ASSIGN(int64_t whole, BatchBytes(*batch));
  ASSERT_OK_AND_ASSIGN(int64_t ten, BatchBytes(*batch->Slice(40, 10)));
  EXPECT_GE(whole, 100 * 1000);
  EXPECT_GE(ten, 10 * 1000);
  EXPECT_LT(ten, 11 * 1000);
  EXPECT_GE(BatchBytesUpperBound(*batch->Slice(40, 10)), whole);  // whole buffers
}

TEST(BatchBytes, AViewColumnCountsWhatItsRowsReference) {
  // A string_view slice keeps every data buffer of its column; what is sent
  // (compacted) is its own rows' bytes, and pieces are cut by that.
  arrow::StringViewBuilder builder;
  for (int i = 0; i < 1000; ++i) EXPECT_OK(builder.Append(std::string(1000, 'v')));
  auto batch = arrow::RecordBatch::Make(arrow::schema({arrow::field("s", arrow::utf8_view())}),
                                        1000, {*builder.Finish()});
  ASSERT_OK_AND_ASSIGN(int64_t ten, BatchBytes(*batch->Slice(40, 10)));
  EXPECT_GE(ten, 10 * 1000);
  EXPECT_LT(ten, 11 * 1000);
  ASSERT_OK_AND_ASSIGN(int64_t rows, RowsThatFit(*batch, 0, 102 * 1000));
  EXPECT_EQ(rows, 100);  // 1,000 characters, a 16-byte view and a validity bit per row
}

TEST(BatchBytes, PiecesAreTheLargestThatFit) {
  auto batch = Strings(std::vector<int64_t>(100, 1000));
  // 1000 characters and a 4-byte offset per row: 10 rows take 10040 bytes.
  ASSERT_OK_AND_ASSIGN(int64_t rows, RowsThatFit(*batch, 0, 10100));
  EXPECT_EQ(rows, 10);
  ASSERT_OK_AND_ASSIGN(rows, RowsThatFit(*batch, 95, 10100));
  EXPECT_EQ(rows, 5);  // the rest
  EXPECT_EQ(Pieces(batch, 10100), std::vector<int64_t>(10, 10));
}

TEST(BatchBytes, UnevenRowsAndRowsOverTheCap) {
  // 100, 5000, 100 x 3, 4000: the 5000 row alone is over a cap of 4500; the last
  // four rows take 4300 characters and 20 offset bytes.
  auto batch = Strings({100, 5000, 100, 100, 100, 4000});
  EXPECT_EQ(Pieces(batch, 4500), (std::vector<int64_t>{1, 1, 4}));
  EXPECT_EQ(Pieces(batch, 4300), (std::vector<int64_t>{1, 1, 3, 1}));
  EXPECT_EQ(Pieces(batch, 1), (std::vector<int64_t>{1, 1, 1, 1, 1, 1}));
  EXPECT_EQ(Pieces(batch, 1 << 20), (std::vector<int64_t>{6}));
}

TEST(BatchBytes, BatchesWithinTheCapPassThroughUntouched) {
  auto batch = Strings({10, 20, 30});
  auto reader =
      CapBatchBytes(*arrow::RecordBatchReader::Make({batch, batch->Slice(0, 0)}), {0}, 1 << 20);
  std::shared_ptr<arrow::RecordBatch> out;
  ASSERT_OK(reader->ReadNext(&out));
  EXPECT_EQ(out, batch);  // the same object: no slice, no copy
  ASSERT_OK(reader->ReadNext(&out));
  EXPECT_EQ(out->num_rows(), 0);
  ASSERT_OK(reader->ReadNext(&out));
  EXPECT_EQ(out, nullptr);
}

}  // namespace
}  // namespace quiver::exec
