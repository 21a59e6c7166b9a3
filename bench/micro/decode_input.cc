// Reads an input file the way `quiver run` does and nothing else: the decode
// threads (QUIVER_DECODE_THREADS, else the cores one worker leaves) read every
// batch, which is dropped. Prints the rows and the seconds it took; measured
// against itself by bench/decode_formats.py (wall, CPU, peak RSS).
//
//   quiver_bench_decode FILE [BATCH_ROWS]

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "quiver/input/file_format.h"
#include "quiver/input/input_file.h"
#include "quiver/input/parallel_parquet_reader.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE [BATCH_ROWS]\n", argv[0]);
    return 2;
  }
  const std::string path = argv[1];
  quiver::input::InputReadOptions options;
  if (argc > 2) options.batch_rows = std::atoll(argv[2]);
  options.read_ahead_batches = 2;  // as quiver run reads
  options.decode_threads = quiver::input::DecodeThreadsOfRun(1);
  const auto start = std::chrono::steady_clock::now();
  auto format = quiver::input::ResolveInputFormat(path, std::nullopt);
  auto input = format.ok() ? quiver::input::OpenInputFile(path, *format, options)
                           : arrow::Result<quiver::input::InputFile>(format.status());
  if (!input.ok()) {
    std::fprintf(stderr, "%s\n", input.status().ToString().c_str());
    return 1;
  }
  int64_t rows = 0;
  while (true) {
    std::shared_ptr<arrow::RecordBatch> batch;
    auto status = input->reader->ReadNext(&batch);
    if (!status.ok()) {
      std::fprintf(stderr, "%s\n", status.ToString().c_str());
      return 1;
    }
    if (batch == nullptr) break;
    rows += batch->num_rows();
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%lld rows in %.3f s with %d decode threads\n", static_cast<long long>(rows), seconds,
              options.decode_threads);
  return 0;
}
