// quiver_bench_shm: the identity round trip through the Python worker over the shm
// transport beside uds, and the machine's limits measured in the same run: memcpy of
// the same bytes and a raw Unix-socket transfer of them (one direction).
//
// As in quiver_bench_roundtrip, the worker is driven through WorkerExecution with up to
// kInFlight batches unanswered, each iteration sends kBatchesPerIteration batches and
// receives every result, and bytes count each batch once (its Arrow buffers), though a
// round trip moves them to the worker and back. Results are dropped as they arrive, so
// their shared-memory regions go back to the worker.

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <arrow/util/byte_size.h>
#include <benchmark/benchmark.h>

#include "quiver/io/unique_fd.h"
#include "quiver/protocol/batch_codec.h"
#include "quiver/worker/worker.h"
#include "quiver/worker/worker_dispatcher.h"
#include "quiver/worker/worker_execution.h"
#include "sample_batch.h"

namespace quiver::bench {
namespace {

constexpr int kInFlight = 4;
constexpr int kBatchesPerIteration = 16;
constexpr int64_t kArenaBytes = int64_t{256} << 20;
const char* const kTransports[] = {"uds", "shm"};

[[noreturn]] void Die(const std::string& what, const arrow::Status& status) {
  std::fprintf(stderr, "quiver_bench_shm: %s: %s\n", what.c_str(), status.ToString().c_str());
  std::abort();
}

std::string Python() {
  const char* python = std::getenv("QUIVER_PYTHON");
  return python != nullptr && *python != '\0' ? python : QUIVER_BENCH_PYTHON;
}

// One Python worker per transport, shared by every benchmark over it.
worker::Worker* SharedWorker(const std::string& transport) {
  struct Shared {
    std::unique_ptr<worker::WorkerDispatcher> dispatcher;
    std::unique_ptr<worker::Worker> worker;
    ~Shared() { dispatcher->Release(std::move(worker)); }
  };
  static std::map<std::string, std::unique_ptr<Shared>> workers;
  auto& shared = workers[transport];
  if (shared == nullptr) {
    worker::WorkerSpec spec;
    spec.command = worker::PythonWorkerCommand(Python());
    spec.transport = transport;
    auto dispatcher = worker::WorkerDispatcher::Make(spec);
    if (!dispatcher.ok()) Die("making the dispatcher", dispatcher.status());
    shared = std::make_unique<Shared>();
    shared->dispatcher = std::move(dispatcher).ValueUnsafe();
    auto acquired = shared->dispatcher->Acquire();
    if (!acquired.ok()) Die("starting a worker over " + transport, acquired.status());
    shared->worker = std::move(acquired).ValueUnsafe();
  }
  return shared->worker.get();
}

std::unique_ptr<worker::WorkerExecution> StartIdentity(const arrow::Schema& schema,
                                                       const std::string& transport) {
  v1::Init init;
  init.set_protocol_version(1);
  init.set_data_format(v1::ARROW_IPC_STREAM);
  init.set_input_schema(protocol::SerializeSchema(schema).ValueOrDie());
  init.set_session_time_zone("UTC");
  v1::UdfDefinition* udf = init.add_udfs();
  udf->set_name("result");
  udf->set_payload_format("python/ref");
  udf->set_payload(std::string(QUIVER_BENCH_UDF_FILE) + ":identity");
  udf->add_argument_offsets(0);
  auto session = worker::WorkerExecution::Start(SharedWorker(transport), init);
  if (!session.ok()) Die("starting a session", session.status());
  if (auto ready = (*session)->WaitUntilReady(); !ready.ok()) Die("Init", ready);
  return std::move(session).ValueUnsafe();
}

void PipelinedRoundTrips(worker::WorkerExecution* session, const arrow::RecordBatch& batch,
                         uint64_t* sequence, int count) {
  uint64_t received = *sequence;
  for (int i = 0; i < count; ++i) {
    if (*sequence - received == kInFlight) {
      auto result = session->Receive(received++, batch.num_rows());
      if (!result.ok()) Die("receiving a result", result.status());
    }
    arrow::Status sent = session->Send((*sequence)++, batch);
    if (!sent.ok()) Die("sending a batch", sent);
  }
  while (received < *sequence) {
    auto result = session->Receive(received++, batch.num_rows());
    if (!result.ok()) Die("receiving a result", result.status());
    benchmark::DoNotOptimize(result->get());
  }
}

void BM_IdentityRoundTrip(benchmark::State& state) {
  const auto batch = StringBatch(state.range(0));
  const std::string transport = kTransports[state.range(1)];
  auto session = StartIdentity(*batch->schema(), transport);
  uint64_t sequence = 0;
  for (auto _ : state) PipelinedRoundTrips(session.get(), *batch, &sequence, kBatchesPerIteration);
  if (auto metrics = session->Finish(); !metrics.ok()) Die("finishing", metrics.status());
  state.SetBytesProcessed(state.iterations() * kBatchesPerIteration *
                          arrow::util::TotalBufferSize(*batch));
  state.SetLabel(SizeLabel(state.range(0)) + " " + transport);
}

struct Arenas {
  std::shared_ptr<arrow::Buffer> source = FilledBuffer(kArenaBytes, 'a');
  std::shared_ptr<arrow::Buffer> destination = FilledBuffer(kArenaBytes, 'b');
  static Arenas& Get() {
    static Arenas arenas;
    return arenas;
  }
};

int64_t BlockOffset(int64_t index, int64_t bytes) {
  return (index * bytes) % (kArenaBytes - bytes + 1);
}

void BM_Memcpy(benchmark::State& state) {
  const int64_t bytes = state.range(0);
  Arenas& arenas = Arenas::Get();
  int64_t index = 0;
  for (auto _ : state) {
    const int64_t offset = BlockOffset(index++, bytes);
    std::memcpy(arenas.destination->mutable_data() + offset, arenas.source->data() + offset,
                static_cast<size_t>(bytes));
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * bytes);
  state.SetLabel(SizeLabel(bytes));
}

void BM_UnixSocket(benchmark::State& state) {
  const int64_t bytes = state.range(0);
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    Die("socketpair", arrow::Status::IOError(std::strerror(errno)));
  }
  io::UniqueFd sender(fds[0]);
  io::UniqueFd receiver(fds[1]);
  std::thread reader([&] {
    std::vector<uint8_t> buffer(static_cast<size_t>(bytes));
    while (true) {
      const ssize_t got = ::recv(receiver.get(), buffer.data(), buffer.size(), 0);
      if (got == 0 || (got < 0 && errno != EINTR)) return;
    }
  });
  const uint8_t* source = Arenas::Get().source->data();
  int64_t index = 0;
  for (auto _ : state) {
    const uint8_t* data = source + BlockOffset(index++, bytes);
    int64_t left = bytes;
    while (left > 0) {
      const ssize_t sent = ::send(sender.get(), data, static_cast<size_t>(left), MSG_NOSIGNAL);
      if (sent < 0 && errno == EINTR) continue;
      if (sent < 0) Die("send", arrow::Status::IOError(std::strerror(errno)));
      data += sent;
      left -= sent;
    }
  }
  ::shutdown(sender.get(), SHUT_WR);
  reader.join();
  state.SetBytesProcessed(state.iterations() * bytes);
  state.SetLabel(SizeLabel(bytes));
}

constexpr int64_t kSizes[] = {64 << 10, 1 << 20, 16 << 20};

void Sizes(benchmark::internal::Benchmark* benchmark) {
  for (int64_t size : kSizes) benchmark->Arg(size);
  benchmark->UseRealTime();
}

void SizesAndTransports(benchmark::internal::Benchmark* benchmark) {
  for (int64_t size : kSizes) {
    for (int64_t transport = 0; transport < 2; ++transport) benchmark->Args({size, transport});
  }
  benchmark->UseRealTime();
}

BENCHMARK(BM_IdentityRoundTrip)->Apply(SizesAndTransports);
BENCHMARK(BM_Memcpy)->Apply(Sizes);
BENCHMARK(BM_UnixSocket)->Apply(Sizes);

}  // namespace
}  // namespace quiver::bench
