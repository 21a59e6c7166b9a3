// quiver_bench_roundtrip: one string column through a real worker over uds and back (an
// identity UDF: the Python worker's pa.Array function, or the C++ SDK's example worker), beside the
// physical limits measured in the same run: memcpy of the same bytes, and a raw Unix-socket
// transfer of the same bytes.
//
// The worker is driven through WorkerExecution directly: Start, WaitUntilReady, then Send and
// Receive in a pipelined loop with up to kInFlight batches unanswered, as UdfOperator does.
// Each iteration sends kBatchesPerIteration batches and receives all their results, so
// the timing covers complete round trips. Bytes per iteration count each batch once
// (its Arrow buffers), though a round trip moves them to the worker and back.

#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
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
// Size of the source and destination arenas of memcpy and of the socket's sender:
// larger than the caches, so copies stream from and to memory.
constexpr int64_t kArenaBytes = int64_t{256} << 20;

[[noreturn]] void Die(const std::string& what, const arrow::Status& status) {
  std::fprintf(stderr, "quiver_bench_roundtrip: %s: %s\n", what.c_str(), status.ToString().c_str());
  std::abort();
}

std::string Python() {
  const char* python = std::getenv("QUIVER_PYTHON");
  return python != nullptr && *python != '\0' ? python : QUIVER_BENCH_PYTHON;
}

// The transports the round trip is measured over, side by side in one run.
const char* const kTransports[] = {"uds", "grpc+unix"};
// The workers: quiver's Python worker and the C++ SDK's example worker.
const char* const kWorkers[] = {"python", "c++"};

// One worker process per (worker, transport), started on first use and shared by
// every round-trip benchmark over that pair.
class SharedWorker {
 public:
  static worker::Worker* Get(const std::string& kind, const std::string& transport) {
    static std::map<std::string, std::unique_ptr<SharedWorker>> workers;
    auto& shared = workers[kind + " " + transport];
    if (shared == nullptr) shared.reset(new SharedWorker(kind, transport));
    return shared->worker_.get();
  }

  ~SharedWorker() { dispatcher_->Release(std::move(worker_)); }

 private:
  SharedWorker(const std::string& kind, const std::string& transport) {
    worker::WorkerSpec spec;
    spec.command = kind == "python" ? worker::PythonWorkerCommand(Python())
                                    : std::vector<std::string>{QUIVER_BENCH_CPP_WORKER};
    spec.transport = transport;
    auto dispatcher = worker::WorkerDispatcher::Make(spec);
    if (!dispatcher.ok()) Die("making the dispatcher", dispatcher.status());
    dispatcher_ = std::move(dispatcher).ValueUnsafe();
    auto worker = dispatcher_->Acquire();
    if (!worker.ok()) Die("starting a " + kind + " worker", worker.status());
    worker_ = std::move(worker).ValueUnsafe();
  }

  std::unique_ptr<worker::WorkerDispatcher> dispatcher_;
  std::unique_ptr<worker::Worker> worker_;
};

// The Init of a session running an identity UDF on column 0: for Python
// bench/micro/identity_udf.py:identity, for C++ the example worker's "identity".
v1::Init IdentityInit(const arrow::Schema& schema, const std::string& kind) {
  v1::Init init;
  init.set_protocol_version(1);
  init.set_data_format(v1::ARROW_IPC_STREAM);
  init.set_input_schema(protocol::SerializeSchema(schema).ValueOrDie());
  init.set_session_time_zone("UTC");
  v1::UdfDefinition* udf = init.add_udfs();
  udf->set_name("result");
  if (kind == "python") {
    udf->set_payload_format("python/ref");
    udf->set_payload(std::string(QUIVER_BENCH_UDF_FILE) + ":identity");
  } else {
    udf->set_payload_format("symbol");
    udf->set_payload("identity");
  }
  udf->add_argument_offsets(0);
  return init;
}

std::unique_ptr<worker::WorkerExecution> StartIdentity(const arrow::Schema& schema,
                                                       const std::string& kind,
                                                       const std::string& transport) {
  auto session = worker::WorkerExecution::Start(SharedWorker::Get(kind, transport),
                                                IdentityInit(schema, kind));
  if (!session.ok()) Die("starting a session", session.status());
  if (auto ready = (*session)->WaitUntilReady(); !ready.ok()) Die("Init", ready);
  return std::move(session).ValueUnsafe();
}

// Sends `count` batches with at most kInFlight unanswered, and receives every result.
void PipelinedRoundTrips(worker::WorkerExecution* session, const arrow::RecordBatch& batch,
                         uint64_t* sequence, int count) {
  const uint64_t first = *sequence;
  uint64_t received = first;
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

void BM_WorkerRoundTrip(benchmark::State& state) {
  const auto batch = StringBatch(state.range(0));
  const std::string transport = kTransports[state.range(1)];
  const std::string kind = kWorkers[state.range(2)];
  auto session = StartIdentity(*batch->schema(), kind, transport);
  uint64_t sequence = 0;
  for (auto _ : state) PipelinedRoundTrips(session.get(), *batch, &sequence, kBatchesPerIteration);
  if (auto metrics = session->Finish(); !metrics.ok()) Die("finishing", metrics.status());
  const int64_t bytes = arrow::util::TotalBufferSize(*batch);
  state.SetBytesProcessed(state.iterations() * kBatchesPerIteration * bytes);
  state.SetLabel(SizeLabel(state.range(0)) + " " + transport + " " + kind);
}

// One 1-row batch at a time, sent and answered before the next: the per-batch
// overhead of the protocol, the transport and the worker (median of the iterations).
void BM_OneRowRoundTrip(benchmark::State& state) {
  const auto batch = StringBatch(1);  // one row of 100 characters
  const std::string transport = kTransports[state.range(0)];
  const std::string kind = kWorkers[state.range(1)];
  auto session = StartIdentity(*batch->schema(), kind, transport);
  uint64_t sequence = 0;
  for (auto _ : state) {
    if (auto sent = session->Send(sequence, *batch); !sent.ok()) Die("sending a batch", sent);
    auto result = session->Receive(sequence++, 1);
    if (!result.ok()) Die("receiving a result", result.status());
    benchmark::DoNotOptimize(result->get());
  }
  if (auto metrics = session->Finish(); !metrics.ok()) Die("finishing", metrics.status());
  state.SetLabel("1 row " + transport + " " + kind);
}

// Two arenas larger than the caches, touched once so their pages are resident.
struct Arenas {
  std::shared_ptr<arrow::Buffer> source = FilledBuffer(kArenaBytes, 'a');
  std::shared_ptr<arrow::Buffer> destination = FilledBuffer(kArenaBytes, 'b');

  static Arenas& Get() {
    static Arenas arenas;
    return arenas;
  }
};

// The offset of the `index`-th block of `bytes` in an arena, cycling through it.
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

// Receives until the peer closes; returns the bytes received.
int64_t ReceiveUntilClosed(int fd, int64_t message_bytes) {
  std::vector<uint8_t> buffer(static_cast<size_t>(message_bytes));
  int64_t total = 0;
  while (true) {
    const ssize_t got = ::recv(fd, buffer.data(), buffer.size(), 0);
    if (got > 0) {
      total += got;
    } else if (got == 0 || errno != EINTR) {
      return total;
    }
  }
}

// Sends `bytes` from `data` with sendmsg, as the uds transport writes a frame.
void SendAll(int fd, const uint8_t* data, int64_t bytes) {
  while (bytes > 0) {
    iovec part{const_cast<uint8_t*>(data), static_cast<size_t>(bytes)};
    msghdr message{};
    message.msg_iov = &part;
    message.msg_iovlen = 1;
    const ssize_t sent = ::sendmsg(fd, &message, MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0) Die("sendmsg", arrow::Status::IOError(std::strerror(errno)));
    data += sent;
    bytes -= sent;
  }
}

// One direction over a socketpair: this thread sends, a reader thread receives.
void BM_UnixSocket(benchmark::State& state) {
  const int64_t bytes = state.range(0);
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    Die("socketpair", arrow::Status::IOError(std::strerror(errno)));
  }
  io::UniqueFd sender(fds[0]);
  io::UniqueFd receiver(fds[1]);
  int64_t received = 0;
  std::thread reader([&] { received = ReceiveUntilClosed(receiver.get(), bytes); });
  const uint8_t* source = Arenas::Get().source->data();
  int64_t index = 0;
  for (auto _ : state) SendAll(sender.get(), source + BlockOffset(index++, bytes), bytes);
  ::shutdown(sender.get(), SHUT_WR);
  reader.join();
  if (received != index * bytes) Die("socket", arrow::Status::IOError("bytes lost"));
  state.SetBytesProcessed(state.iterations() * bytes);
  state.SetLabel(SizeLabel(bytes));
}

void BatchSizes(benchmark::internal::Benchmark* benchmark) {
  for (int64_t size : {64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20}) benchmark->Arg(size);
  benchmark->UseRealTime();
}

// Every batch size over every transport and worker, compared in one run.
void BatchSizesTransportsAndWorkers(benchmark::internal::Benchmark* benchmark) {
  for (int64_t size : {64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20}) {
    for (int64_t transport = 0; transport < 2; ++transport) {
      for (int64_t worker = 0; worker < 2; ++worker) benchmark->Args({size, transport, worker});
    }
  }
  benchmark->UseRealTime();
}

void TransportsAndWorkers(benchmark::internal::Benchmark* benchmark) {
  for (int64_t transport = 0; transport < 2; ++transport) {
    for (int64_t worker = 0; worker < 2; ++worker) benchmark->Args({transport, worker});
  }
  benchmark->UseRealTime();
}

BENCHMARK(BM_WorkerRoundTrip)->Apply(BatchSizesTransportsAndWorkers);
BENCHMARK(BM_OneRowRoundTrip)->Apply(TransportsAndWorkers);
BENCHMARK(BM_Memcpy)->Apply(BatchSizes);
BENCHMARK(BM_UnixSocket)->Apply(BatchSizes);

}  // namespace
}  // namespace quiver::bench
