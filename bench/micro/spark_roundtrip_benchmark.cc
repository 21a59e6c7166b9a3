// quiver_bench_spark_roundtrip: the engine's per-batch round trip with the Python worker speaking
// Spark's dialect (transport `spark`: a Spark Execute stream per UDF, docs/spark-protocol.md)
// beside the same worker speaking quiver.v1 over grpc+unix. One batch is sent and answered
// before the next, through WorkerExecution as UdfOperator drives it: 1 row of 100 characters, and
// 1 MiB of strings. Run with --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// for medians.

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "quiver/protocol/batch_codec.h"
#include "quiver/worker/worker.h"
#include "quiver/worker/worker_dispatcher.h"
#include "quiver/worker/worker_execution.h"
#include "sample_batch.h"

namespace quiver::bench {
namespace {

// quiver.v1 over gRPC, and Spark's dialect (also gRPC, on a Unix socket).
const char* const kTransports[] = {"grpc+unix", "spark"};

[[noreturn]] void Die(const std::string& what, const arrow::Status& status) {
  std::fprintf(stderr, "quiver_bench_spark_roundtrip: %s: %s\n", what.c_str(),
               status.ToString().c_str());
  std::abort();
}

std::string Python() {
  const char* python = std::getenv("QUIVER_PYTHON");
  return python != nullptr && *python != '\0' ? python : QUIVER_BENCH_PYTHON;
}

// One Python worker per transport, started on first use.
worker::Worker* SharedWorker(const std::string& transport) {
  struct Held {
    std::unique_ptr<worker::WorkerDispatcher> dispatcher;
    std::unique_ptr<worker::Worker> worker;
    ~Held() { dispatcher->Release(std::move(worker)); }
  };
  static std::map<std::string, std::unique_ptr<Held>> workers;
  auto& held = workers[transport];
  if (held == nullptr) {
    worker::WorkerSpec spec;
    spec.command = worker::PythonWorkerCommand(Python());
    if (transport == "spark") {
      spec.command.insert(spec.command.end(), {"--dialect", "spark"});
    }
    spec.transport = transport;
    auto dispatcher = worker::WorkerDispatcher::Make(spec);
    if (!dispatcher.ok()) Die("making the dispatcher", dispatcher.status());
    auto worker = (*dispatcher)->Acquire();
    if (!worker.ok()) Die("starting a worker over " + transport, worker.status());
    held = std::make_unique<Held>();
    held->dispatcher = std::move(dispatcher).ValueUnsafe();
    held->worker = std::move(worker).ValueUnsafe();
  }
  return held->worker.get();
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

// range(0): bytes of the batch (0: one row); range(1): the transport.
void BM_PerBatchRoundTrip(benchmark::State& state) {
  const auto batch = StringBatch(state.range(0) == 0 ? 1 : state.range(0));
  const std::string transport = kTransports[state.range(1)];
  auto session = StartIdentity(*batch->schema(), transport);
  uint64_t sequence = 0;
  for (auto _ : state) {
    if (auto sent = session->Send(sequence, *batch); !sent.ok()) Die("sending a batch", sent);
    auto result = session->Receive(sequence++, batch->num_rows());
    if (!result.ok()) Die("receiving a result", result.status());
    benchmark::DoNotOptimize(result->get());
  }
  if (auto metrics = session->Finish(); !metrics.ok()) Die("finishing", metrics.status());
  state.SetLabel((state.range(0) == 0 ? std::string("1 row ") : std::string("1 MiB ")) +
                 (transport == "spark" ? "spark dialect" : "quiver.v1 grpc+unix"));
}

BENCHMARK(BM_PerBatchRoundTrip)
    ->ArgsProduct({{0, 1 << 20}, {0, 1}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace
}  // namespace quiver::bench
