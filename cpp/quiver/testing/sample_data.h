#pragma once

// Record batches that exercise the Arrow features quiver must carry intact:
// strings, nulls, dictionary and list columns.

#include <memory>
#include <string>
#include <vector>

#include <arrow/array.h>
#include <arrow/buffer.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/writer.h>
#include <arrow/json/from_string.h>
#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/type.h>

namespace quiver::testing {

/// Returns the schema of MakeSampleBatch.
inline std::shared_ptr<arrow::Schema> SampleSchema() {
  return arrow::schema({arrow::field("id", arrow::int32()), arrow::field("name", arrow::utf8()),
                        arrow::field("value", arrow::float64()),
                        arrow::field("color", arrow::dictionary(arrow::int8(), arrow::utf8())),
                        arrow::field("tags", arrow::list(arrow::int64()))});
}

/// Builds batch number `index` of a sample stream (contents differ per index).
inline arrow::Result<std::shared_ptr<arrow::RecordBatch>> MakeSampleBatch(int index) {
  const std::string i = std::to_string(index);
  ARROW_ASSIGN_OR_RAISE(
      auto ids, arrow::json::ArrayFromJSONString(arrow::int32(), "[" + i + ", null, 3, 4]"));
  ARROW_ASSIGN_OR_RAISE(auto names,
                        arrow::json::ArrayFromJSONString(
                            arrow::utf8(), "[\"alpha" + i + "\", \"\", null, \"déjà vu\"]"));
  ARROW_ASSIGN_OR_RAISE(
      auto values, arrow::json::ArrayFromJSONString(arrow::float64(), "[1.5, -0.0, null, 1e300]"));
  ARROW_ASSIGN_OR_RAISE(auto colors, arrow::json::DictArrayFromJSONString(
                                         arrow::dictionary(arrow::int8(), arrow::utf8()),
                                         "[0, 1, null, 0]", "[\"red\", \"green" + i + "\"]"));
  ARROW_ASSIGN_OR_RAISE(auto tags,
                        arrow::json::ArrayFromJSONString(arrow::list(arrow::int64()),
                                                         "[[1, 2], [], null, [" + i + ", null]]"));
  return arrow::RecordBatch::Make(SampleSchema(), 4, {ids, names, values, colors, tags});
}

/// Serializes `count` sample batches as one Arrow IPC stream.
inline arrow::Result<std::shared_ptr<arrow::Buffer>> MakeSampleIpcStream(int count) {
  ARROW_ASSIGN_OR_RAISE(auto sink, arrow::io::BufferOutputStream::Create());
  ARROW_ASSIGN_OR_RAISE(auto writer, arrow::ipc::MakeStreamWriter(sink, SampleSchema()));
  for (int index = 0; index < count; ++index) {
    ARROW_ASSIGN_OR_RAISE(auto batch, MakeSampleBatch(index));
    ARROW_RETURN_NOT_OK(writer->WriteRecordBatch(*batch));
  }
  ARROW_RETURN_NOT_OK(writer->Close());
  return sink->Finish();
}

}  // namespace quiver::testing
