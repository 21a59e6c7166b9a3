// Fuzzes the engine's reading of a worker's result: the Arrow IPC decoder
// (protocol/batch_codec.h) and then the validation every result passes
// (protocol/result_validation.h). A batch that passes validation is then read
// the way the output writers read it (every value, as text), which must never
// crash: that is the promise the validation makes to the rest of the engine.
//
// The first byte picks the path: even, the body arrives as one buffer (uds);
// odd, in chunks through a ChunkedInputStream (gRPC), cut as the byte says.

#include <cstddef>
#include <cstdint>
#include <memory>

#include <arrow/csv/options.h>
#include <arrow/csv/writer.h>
#include <arrow/io/memory.h>
#include <arrow/record_batch.h>

#include "fuzz/fuzz_input.h"
#include "quiver/io/chunked_input_stream.h"
#include "quiver/protocol/batch_codec.h"
#include "quiver/protocol/result_validation.h"

namespace {

constexpr int64_t kMostRowsTheEngineSends = int64_t{1} << 20;

arrow::Result<std::shared_ptr<arrow::RecordBatch>> Decode(const uint8_t* data, size_t size,
                                                          uint8_t path) {
  if (path % 2 == 0)
    return quiver::protocol::DecodeBatchStream(quiver::fuzz::ExactCopy(data, size));
  auto stream = std::make_shared<quiver::io::ChunkedInputStream>();
  for (const auto& chunk : quiver::fuzz::SplitIntoChunks(data, size, path / 2)) {
    ARROW_RETURN_NOT_OK(stream->Append(chunk));
  }
  stream->Finish();
  return quiver::protocol::DecodeBatchStream(stream);
}

void ReadEveryValue(const arrow::RecordBatch& batch) {
  (void)batch.ToString();
  auto sink = arrow::io::BufferOutputStream::Create().ValueOrDie();
  (void)arrow::csv::WriteCSV(batch, arrow::csv::WriteOptions::Defaults(), sink.get());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  auto batch = Decode(data + 1, size - 1, data[0]);
  if (!batch.ok()) return 0;
  if (!quiver::protocol::ValidateResultBatch(**batch).ok()) return 0;
  // A valid batch of columns that need no buffers (null type, empty structs)
  // may claim any length: 2^40 rows cost the CSV writer hours, not memory.
  // The engine never writes such a batch, because it refuses a result whose
  // length differs from the batch it sent; bound it the same way here.
  if ((*batch)->num_rows() > kMostRowsTheEngineSends) return 0;
  ReadEveryValue(**batch);
  return 0;
}
