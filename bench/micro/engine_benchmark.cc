// quiver_bench_engine: what the engine itself spends on one batch, apart from the worker and
// the scheduler.
//
// - The pieces of one 1-row batch's round trip, each alone: encoding the argument batch as a
//   Data body (quiver's codec, beside Arrow's stream writer that it replaces), decoding a
//   result body (beside Arrow's stream reader), and the full validation of the result.
// - BM_EngineOneRowBatch: UdfOperator over an endless stream of 1-row batches with one
//   batch in flight, against the C++ SDK's example worker over uds, as `quiver run
//   --batch-rows 1 --max-in-flight 1` runs. Besides the wall time per batch it reports the
//   CPU time per batch of the engine process (every thread: the caller's and the session's
//   receiver) and of the worker process: on a loaded machine the wall time is mostly waiting
//   for a core, the CPU figures are what each side costs.

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <arrow/compute/expression.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/reader.h>
#include <arrow/ipc/writer.h>
#include <benchmark/benchmark.h>

#include "quiver/exec/udf_operator.h"
#include "quiver/protocol/batch_codec.h"
#include "quiver/protocol/result_validation.h"
#include "quiver/worker/worker_dispatcher.h"
#include "sample_batch.h"

namespace quiver::bench {
namespace {

[[noreturn]] void Die(const std::string& what, const arrow::Status& status) {
  std::fprintf(stderr, "quiver_bench_engine: %s: %s\n", what.c_str(), status.ToString().c_str());
  std::abort();
}

template <typename T>
T Check(arrow::Result<T> result, const std::string& what) {
  if (!result.ok()) Die(what, result.status());
  return std::move(result).ValueUnsafe();
}

std::shared_ptr<arrow::Buffer> Join(const std::vector<std::shared_ptr<arrow::Buffer>>& buffers) {
  return Check(arrow::ConcatenateBuffers(buffers), "joining buffers");
}

// The encoding quiver used before its schema cache: a stream writer per batch.
std::vector<std::shared_ptr<arrow::Buffer>> StreamWriterBody(const arrow::RecordBatch& batch) {
  auto sink = Check(arrow::io::BufferOutputStream::Create(), "sink");
  auto writer = Check(arrow::ipc::MakeStreamWriter(sink, batch.schema()), "writer");
  if (auto status = writer->WriteRecordBatch(batch); !status.ok()) Die("write", status);
  if (auto status = writer->Close(); !status.ok()) Die("close", status);
  return {Check(sink->Finish(), "finish")};
}

void BM_EncodeOneRow_ArrowStreamWriter(benchmark::State& state) {
  const auto batch = StringBatch(1);
  for (auto _ : state) benchmark::DoNotOptimize(StreamWriterBody(*batch));
}

void BM_EncodeOneRow_Quiver(benchmark::State& state) {
  const auto batch = StringBatch(1);
  for (auto _ : state) {
    benchmark::DoNotOptimize(Check(protocol::EncodeBatchStream(*batch), "encode"));
  }
}

void BM_DecodeOneRow_ArrowStreamReader(benchmark::State& state) {
  const auto body = Join(StreamWriterBody(*StringBatch(1)));
  for (auto _ : state) {
    auto input = std::make_shared<arrow::io::BufferReader>(body);
    auto reader = Check(arrow::ipc::RecordBatchStreamReader::Open(input), "open");
    benchmark::DoNotOptimize(Check(reader->Next(), "read"));
  }
}

void BM_DecodeOneRow_Quiver(benchmark::State& state) {
  const auto body = Join(StreamWriterBody(*StringBatch(1)));
  for (auto _ : state) benchmark::DoNotOptimize(Check(protocol::DecodeBatchStream(body), "decode"));
}

void BM_ValidateOneRowResult(benchmark::State& state) {
  const auto batch = StringBatch(1);
  for (auto _ : state) benchmark::DoNotOptimize(protocol::ValidateResultBatch(*batch));
}

// The same 1-row batch, for ever.
class EndlessReader : public arrow::RecordBatchReader {
 public:
  explicit EndlessReader(std::shared_ptr<arrow::RecordBatch> batch) : batch_(std::move(batch)) {}
  std::shared_ptr<arrow::Schema> schema() const override { return batch_->schema(); }
  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* out) override {
    *out = batch_;
    return arrow::Status::OK();
  }

 private:
  std::shared_ptr<arrow::RecordBatch> batch_;
};

// CPU seconds (user + system) of this process, every thread.
double EngineCpuSeconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// CPU seconds (user + system) of process `pid`, from /proc/PID/stat.
double ProcessCpuSeconds(pid_t pid) {
  std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  const size_t end = text.rfind(')');
  if (end == std::string::npos) return 0;
  std::istringstream fields(text.substr(end + 2));  // after "(comm) "
  std::string field;
  double ticks = 0;
  for (int index = 3; fields >> field && index <= 15; ++index) {
    if (index == 14 || index == 15) ticks += std::stod(field);  // utime, stime
  }
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// The newest child process of this one: the worker the dispatcher started.
pid_t NewestChild() {
  pid_t newest = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream file(entry.path() / "stat");
    std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    const size_t end = text.rfind(')');
    if (end == std::string::npos) continue;
    std::istringstream fields(text.substr(end + 2));
    std::string state;
    pid_t parent = 0;
    fields >> state >> parent;
    if (parent == ::getpid()) newest = std::max(newest, static_cast<pid_t>(std::stoi(name)));
  }
  return newest;
}

void BM_EngineOneRowBatch(benchmark::State& state) {
  worker::WorkerSpec spec;
  spec.command = {QUIVER_BENCH_CPP_WORKER};
  auto dispatcher = Check(worker::WorkerDispatcher::Make(spec), "dispatcher");
  exec::UdfOperatorOptions options;
  exec::UdfCall identity;
  identity.name = "result";
  identity.payload_format = "symbol";
  identity.payload = "identity";
  identity.arguments = {arrow::compute::field_ref("data")};
  options.udfs = {identity};
  options.max_batches_in_flight_per_worker = 1;
  auto udf_operator = Check(exec::UdfOperator::Make(dispatcher.get(), options), "operator");
  auto run = Check(udf_operator->Execute(std::make_shared<EndlessReader>(StringBatch(1))), "run");
  const pid_t worker = NewestChild();
  std::shared_ptr<arrow::RecordBatch> out;
  for (int i = 0; i < 100; ++i) (void)run->ReadNext(&out);  // warm up
  const double engine_start = EngineCpuSeconds();
  const double worker_start = ProcessCpuSeconds(worker);
  for (auto _ : state) {
    if (auto status = run->ReadNext(&out); !status.ok()) Die("reading a result", status);
    benchmark::DoNotOptimize(out.get());
  }
  const auto batches = static_cast<double>(state.iterations());
  state.counters["engine_cpu_us"] = (EngineCpuSeconds() - engine_start) / batches * 1e6;
  state.counters["worker_cpu_us"] = (ProcessCpuSeconds(worker) - worker_start) / batches * 1e6;
  if (auto status = run->Close(); !status.ok()) Die("closing", status);
  state.SetLabel("1 row uds c++ worker");
}

BENCHMARK(BM_EncodeOneRow_ArrowStreamWriter);
BENCHMARK(BM_EncodeOneRow_Quiver);
BENCHMARK(BM_DecodeOneRow_ArrowStreamReader);
BENCHMARK(BM_DecodeOneRow_Quiver);
BENCHMARK(BM_ValidateOneRowResult);
BENCHMARK(BM_EngineOneRowBatch)->UseRealTime()->MinTime(2.0);

}  // namespace
}  // namespace quiver::bench
