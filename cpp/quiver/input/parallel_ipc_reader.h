#pragma once

// Decoding an Arrow IPC file (the random-access format) on several threads, in
// order: each thread reads, decompresses and validates whole record batches
// with a file reader of its own, ahead of the caller; the caller gets them in
// the file's order. An IPC stream cannot be read this way (a batch's place is
// known only once the one before it is read) and keeps the sequential reader.
//
// Memory bound (ordered_decoder.h): at most threads + 1 batches are read and
// not yet handed out, each as its bytes in the file plus, when compressed, its
// decompressed buffers; the caller holds one more. Flat in the file's size,
// linear in the threads.

#include <memory>

#include <arrow/io/interfaces.h>
#include <arrow/ipc/options.h>
#include <arrow/record_batch.h>
#include <arrow/result.h>

namespace quiver::input {

/// Returns a reader of every batch of the Arrow IPC file `file`, read with
/// `read_options` (its included_fields say which columns) on `threads` threads,
/// each batch checked with ValidateFull before it is handed out: a file whose
/// offsets, lengths or UTF-8 are broken is an error naming the batch, never a
/// crash further on. Batches and errors come out in the file's order; an error
/// ends the stream.
arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> ReadIpcFileInParallel(
    std::shared_ptr<arrow::io::RandomAccessFile> file, arrow::ipc::IpcReadOptions read_options,
    int threads);

}  // namespace quiver::input
