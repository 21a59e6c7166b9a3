// Engine::Apply, Aggregate and FlatMap: the grouped and table kinds for
// quiver.Session, run by the same exec::grouped code as `quiver run`.

#include <string>
#include <utility>

#include <arrow/status.h>

#include "quiver/exec/grouped/grouped_agg.h"
#include "quiver/exec/grouped/grouped_map.h"
#include "quiver/exec/grouped/table_function.h"
#include "quiver/python/engine.h"
#include "quiver/python/kind_stream.h"

namespace quiver::python {
namespace {

// Output batches waiting to be read: enough to keep the workers busy while the
// reader works, few enough to bound memory.
constexpr size_t kMaxQueuedBatches = 4;

// exec's checks of a kind's options, in the keywords of quiver.Session.
arrow::Status CheckSessionKindOptions(const exec::grouped::KindOptions& options) {
  exec::OptionNames names;
  names.max_in_flight = "max_in_flight";
  return exec::grouped::CheckKindOptions(options, names);
}

// The body of a KindStream over a started run (GroupedMapRun, GroupedAggRun,
// TableFunctionRun): they share Run(sink), schema() and metrics().
template <typename Run>
KindStream::Body BodyOf(std::unique_ptr<Run> started) {
  std::shared_ptr<Run> run = std::move(started);
  KindStream::Body body;
  body.run = [run](const exec::grouped::BatchSink& sink) { return run->Run(sink); };
  body.final_schema = [run] { return run->schema(); };
  body.metrics = [run] { return run->metrics(); };
  return body;
}

}  // namespace

arrow::Result<std::unique_ptr<ResultStream>> Engine::Apply(
    std::shared_ptr<arrow::RecordBatchReader> input, exec::UdfCall function,
    exec::grouped::KindOptions options) {
  ARROW_RETURN_NOT_OK(CheckOpen());
  ARROW_RETURN_NOT_OK(CheckSessionKindOptions(options));
  const int64_t batch_rows = options.batch_rows;
  ARROW_ASSIGN_OR_RAISE(auto dispatcher, Dispatcher(function.runtime));
  ARROW_ASSIGN_OR_RAISE(auto run, exec::grouped::GroupedMapRun::Start(
                                      dispatcher.get(), std::move(function), std::move(options),
                                      SliceBatches(std::move(input), batch_rows)));
  auto schema = run->schema();
  return KindStream::Start(dispatcher, std::move(schema), BodyOf(std::move(run)),
                           kMaxQueuedBatches);
}

arrow::Result<std::unique_ptr<ResultStream>> Engine::Aggregate(
    std::shared_ptr<arrow::RecordBatchReader> input, std::vector<exec::UdfCall> udafs,
    exec::grouped::KindOptions options) {
  ARROW_RETURN_NOT_OK(CheckOpen());
  ARROW_RETURN_NOT_OK(CheckSessionKindOptions(options));
  const int64_t batch_rows = options.batch_rows;
  const std::string runtime = udafs.empty() ? "" : udafs.front().runtime;
  for (const auto& udaf : udafs) {
    if (udaf.runtime != runtime) {
      return arrow::Status::Invalid("the UDAFs of one aggregate run in one runtime; '",
                                    udafs.front().name, "' and '", udaf.name, "' differ");
    }
  }
  ARROW_ASSIGN_OR_RAISE(auto dispatcher, Dispatcher(runtime));
  ARROW_ASSIGN_OR_RAISE(auto run, exec::grouped::GroupedAggRun::Start(
                                      dispatcher.get(), std::move(udafs), std::move(options),
                                      SliceBatches(std::move(input), batch_rows)));
  // The value types of partial-form UDAFs come from the merge step: the schema
  // is known with the first output batch.
  return KindStream::Start(dispatcher, nullptr, BodyOf(std::move(run)), kMaxQueuedBatches);
}

arrow::Result<std::unique_ptr<ResultStream>> Engine::FlatMap(
    std::shared_ptr<arrow::RecordBatchReader> input, exec::UdfCall udtf,
    std::optional<std::vector<std::string>> select, exec::grouped::KindOptions options) {
  ARROW_RETURN_NOT_OK(CheckOpen());
  ARROW_RETURN_NOT_OK(CheckSessionKindOptions(options));
  const int64_t batch_rows = options.batch_rows;
  ARROW_ASSIGN_OR_RAISE(auto dispatcher, Dispatcher(udtf.runtime));
  ARROW_ASSIGN_OR_RAISE(auto run,
                        exec::grouped::TableFunctionRun::Start(
                            dispatcher.get(), std::move(udtf), std::move(select), "select",
                            std::move(options), SliceBatches(std::move(input), batch_rows)));
  auto schema = run->schema();
  return KindStream::Start(dispatcher, std::move(schema), BodyOf(std::move(run)),
                           kMaxQueuedBatches);
}

}  // namespace quiver::python
