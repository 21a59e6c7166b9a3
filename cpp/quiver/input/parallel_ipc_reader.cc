#include "quiver/input/parallel_ipc_reader.h"

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include <arrow/ipc/reader.h>
#include <arrow/status.h>

#include "quiver/input/ordered_decoder.h"

namespace quiver::input {
namespace {

using FileReaders = std::vector<std::shared_ptr<arrow::ipc::RecordBatchFileReader>>;

// Reads batch `index` with the reader of the thread that decodes it (a file
// reader keeps state, dictionaries among it, so threads do not share one).
arrow::Result<std::shared_ptr<arrow::RecordBatch>> ReadBatch(const FileReaders& readers, int thread,
                                                             int index) {
  const auto& reader = readers[thread];
  auto batch = reader->ReadRecordBatch(index);
  arrow::Status status = batch.status();
  if (status.ok()) status = (*batch)->ValidateFull();
  if (!status.ok()) {
    return status.WithMessage("record batch ", index, " of ", reader->num_record_batches(), ": ",
                              status.message());
  }
  return batch;
}

}  // namespace

arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> ReadIpcFileInParallel(
    std::shared_ptr<arrow::io::RandomAccessFile> file, arrow::ipc::IpcReadOptions read_options,
    int threads) {
  if (threads < 1) return arrow::Status::Invalid("decode threads must be at least 1");
  // The threads are the parallelism: a batch's columns are not also
  // decompressed on Arrow's pool.
  read_options.use_threads = false;
  auto readers = std::make_shared<FileReaders>();
  for (int i = 0; i < threads; ++i) {
    ARROW_ASSIGN_OR_RAISE(auto reader, arrow::ipc::RecordBatchFileReader::Open(file, read_options));
    readers->push_back(std::move(reader));
  }
  const int batches = readers->front()->num_record_batches();
  auto schema = readers->front()->schema();
  auto next = std::make_shared<int>(0);
  ClaimPiece claim = [readers, next, batches]() -> arrow::Result<std::optional<DecodePiece>> {
    if (*next >= batches) return std::nullopt;
    const int index = (*next)++;
    return DecodePiece([readers, index](int thread) { return ReadBatch(*readers, thread, index); });
  };
  OrderedDecodeOptions options;
  options.threads = std::max(1, std::min(threads, batches));
  return DecodeInOrder(std::move(schema), std::move(claim), options);
}

}  // namespace quiver::input
