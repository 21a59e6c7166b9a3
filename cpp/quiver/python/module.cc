// quiver._engine: the Python binding of quiver::python::Engine (nanobind).
//
// Data cross the boundary through the Arrow C data interface only: the input
// is an ArrowArrayStream capsule (__arrow_c_stream__), or paths of files the
// engine reads itself (InputPaths), each result batch an ArrowSchema +
// ArrowArray capsule pair that pyarrow imports without a copy.
// Failures are raised as the exceptions of quiver.errors, built there from the
// Status code, message and UdfErrorDetail.

#include <Python.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <arrow/buffer.h>
#include <arrow/c/abi.h>
#include <arrow/c/bridge.h>
#include <arrow/compute/expression.h>
#include <arrow/record_batch.h>
#include <arrow/status.h>
#include <nanobind/nanobind.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include "quiver/exec/grouped/kinds.h"
#include "quiver/exec/run_metrics.h"
#include "quiver/exec/udf_call.h"
#include "quiver/exec/udf_operator.h"
#include "quiver/input/input_file.h"
#include "quiver/input/input_files.h"
#include "quiver/protocol/udf_error.h"
#include "quiver/python/engine.h"
#include "quiver/transport/registry.h"

namespace nb = nanobind;

namespace quiver::python {
namespace {

// How often a wait for workers looks for Ctrl-C.
constexpr auto kSignalPollInterval = std::chrono::milliseconds(50);

// A failed Status on its way to Python (translated in RaiseStatus).
struct StatusError : std::exception {
  explicit StatusError(arrow::Status s) : status(std::move(s)) {}
  const char* what() const noexcept override { return "quiver engine error"; }
  arrow::Status status;
};

template <typename T>
T ValueOrThrow(arrow::Result<T> result) {
  if (!result.ok()) throw StatusError(result.status());
  return std::move(result).ValueUnsafe();
}

const char* KindKey(UdfErrorKind kind) {
  switch (kind) {
    case UdfErrorKind::kUserError:
      return "user_error";
    case UdfErrorKind::kWorkerError:
      return "worker_error";
    case UdfErrorKind::kWrongRowCount:
      return "wrong_row_count";
    case UdfErrorKind::kWrongResultSchema:
      return "wrong_result_schema";
    case UdfErrorKind::kTimeout:
      return "timeout";
    case UdfErrorKind::kWorkerLost:
      return "worker_lost";
    case UdfErrorKind::kProtocolViolation:
      return "protocol_violation";
    case UdfErrorKind::kBatchTooLarge:
      return "batch_too_large";
    case UdfErrorKind::kOverMemoryCap:
      return "over_memory_cap";
  }
  return "unknown";
}

// Text a worker supplied (messages, tracebacks, log tails) may be any bytes:
// invalid UTF-8 becomes \xNN escapes, as the quiver command prints it, so
// the error still reaches Python as its own kind.
nb::object WorkerText(const std::string& text) {
  PyObject* decoded =
      PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()), "backslashreplace");
  if (decoded == nullptr) throw nb::python_error();
  return nb::steal(decoded);
}

nb::object DetailDict(const arrow::Status& status) {
  const UdfErrorDetail* detail = UdfErrorDetailOf(status);
  if (detail == nullptr) return nb::none();
  nb::dict out;
  out["kind"] = KindKey(detail->kind);
  out["udf_name"] = WorkerText(detail->udf_name);
  out["error_class"] = WorkerText(detail->error_class);
  out["traceback"] = WorkerText(detail->traceback);
  out["worker"] = WorkerText(detail->worker);
  out["worker_pid"] = detail->worker_pid;
  out["exit_status"] = detail->exit_status ? nb::cast(*detail->exit_status) : nb::none();
  out["signal"] = detail->signal ? nb::cast(*detail->signal) : nb::none();
  out["log_tail"] = WorkerText(detail->log_tail);
  out["retryable"] = detail->retryable();
  return out;
}

// Sets the Python error for `status`: quiver.errors.from_engine picks the class.
void RaiseStatus(const arrow::Status& status) {
  nb::object from_engine = nb::module_::import_("quiver.errors").attr("from_engine");
  nb::object error =
      from_engine(status.CodeAsString(), WorkerText(status.message()), DetailDict(status));
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(error.ptr())), error.ptr());
}

// --- Arrow C data interface capsules -------------------------------------

void ReleaseSchemaCapsule(PyObject* capsule) {
  auto* schema = static_cast<ArrowSchema*>(PyCapsule_GetPointer(capsule, "arrow_schema"));
  if (schema->release != nullptr) schema->release(schema);
  delete schema;
}

void ReleaseArrayCapsule(PyObject* capsule) {
  auto* array = static_cast<ArrowArray*>(PyCapsule_GetPointer(capsule, "arrow_array"));
  if (array->release != nullptr) array->release(array);
  delete array;
}

nb::object SchemaCapsule(const arrow::Schema& schema) {
  auto* c_schema = new ArrowSchema;
  arrow::Status exported = arrow::ExportSchema(schema, c_schema);
  if (!exported.ok()) {
    delete c_schema;
    throw StatusError(exported);
  }
  return nb::steal(PyCapsule_New(c_schema, "arrow_schema", ReleaseSchemaCapsule));
}

nb::object BatchCapsules(const arrow::RecordBatch& batch) {
  auto* c_schema = new ArrowSchema;
  auto* c_array = new ArrowArray;
  arrow::Status exported = arrow::ExportRecordBatch(batch, c_array, c_schema);
  if (!exported.ok()) {
    delete c_schema;
    delete c_array;
    throw StatusError(exported);
  }
  nb::object schema = nb::steal(PyCapsule_New(c_schema, "arrow_schema", ReleaseSchemaCapsule));
  nb::object array = nb::steal(PyCapsule_New(c_array, "arrow_array", ReleaseArrayCapsule));
  return nb::make_tuple(schema, array);
}

// Imports the stream of an "arrow_array_stream" capsule; the capsule is left
// released (its destructor then does nothing), the columns are not copied.
std::shared_ptr<arrow::RecordBatchReader> ImportStream(nb::handle capsule) {
  auto* stream =
      static_cast<ArrowArrayStream*>(PyCapsule_GetPointer(capsule.ptr(), "arrow_array_stream"));
  if (stream == nullptr) throw nb::python_error();
  return ValueOrThrow(arrow::ImportRecordBatchReader(stream));
}

// --- Files read by the engine ----------------------------------------------

// Files a call reads through the engine's own readers (quiver/input), as
// `quiver run` reads its input: quiver.Session makes one from paths.
struct InputPaths {
  std::vector<std::string> paths;
  std::optional<std::string> format;  // nullopt: each file's from its extension
};

// A call's input: an Arrow C stream, imported at once (that needs the GIL), or
// paths, which Open opens on the engine's side (without it).
class CallInput {
 public:
  explicit CallInput(nb::handle source) {
    if (nb::isinstance<InputPaths>(source)) {
      paths_ = nb::cast<InputPaths>(source);
    } else {
      stream_ = ImportStream(source);
    }
  }

  // Returns the input's batches: the files are read as a run over `workers`
  // workers reads them (input::RunReadOptions), `columns` only (nullopt: all).
  arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> Open(
      int workers, int64_t batch_rows, std::optional<int64_t> batch_bytes,
      std::optional<std::vector<std::string>> columns) const {
    if (!paths_) return stream_;
    if (batch_rows < 1) return arrow::Status::Invalid("batch_rows must be at least 1");
    input::InputReadOptions read = input::RunReadOptions(workers);
    read.batch_rows = batch_rows;
    if (batch_bytes) read.batch_bytes = *batch_bytes;
    read.columns = std::move(columns);
    read.format_option = "input_format=";
    auto opened = input::OpenInputFiles(paths_->paths, paths_->format, read);
    // A file that cannot be opened is a wrong request, found before any worker
    // starts: quiver.InvalidInput, whatever Arrow's code (errors of later
    // batches stay the run's).
    if (!opened.ok()) return arrow::Status::Invalid(opened.status().message());
    return opened->reader;
  }

 private:
  std::shared_ptr<arrow::RecordBatchReader> stream_;
  std::optional<InputPaths> paths_;
};

// --- UDF calls from Python -------------------------------------------------

arrow::compute::Expression DeserializeExpression(const nb::bytes& serialized) {
  auto buffer = arrow::Buffer::FromString(std::string(serialized.c_str(), serialized.size()));
  return ValueOrThrow(arrow::compute::Deserialize(std::move(buffer)));
}

// (name, payload_format, payload, [serialized expression, ...], constructor_args JSON,
//  runtime: "" or a name given to Engine.add_runtime)
using PyUdfCall = std::tuple<std::string, std::string, nb::bytes, std::vector<nb::bytes>,
                             std::string, std::string>;

exec::UdfCall ToUdfCall(const PyUdfCall& call) {
  exec::UdfCall udf;
  udf.name = std::get<0>(call);
  udf.payload_format = std::get<1>(call);
  const nb::bytes& payload = std::get<2>(call);
  udf.payload.assign(payload.c_str(), payload.size());
  for (const nb::bytes& argument : std::get<3>(call)) {
    udf.arguments.push_back(DeserializeExpression(argument));
  }
  udf.constructor_args = std::get<4>(call);
  udf.runtime = std::get<5>(call);
  return udf;
}

// --- The Python-facing classes ---------------------------------------------

nb::dict WorkerFigures(const exec::WorkerMetrics& worker) {
  nb::dict out;
  out["batches"] = worker.batches;
  out["rows_in"] = worker.rows_in;
  out["rows_out"] = worker.rows_out;
  out["bytes_in"] = worker.bytes_in;
  out["bytes_out"] = worker.bytes_out;
  out["udf_nanos"] = worker.udf_nanos;
  out["codec_nanos"] = worker.codec_nanos;
  out["wait_nanos"] = worker.wait_nanos;
  out["peak_rss_bytes"] = worker.peak_rss_bytes;
  out["counters"] = worker.counters;
  return out;
}

// The spans of a run's trace (docs/metrics.md, "Spans"): its workers' starts and
// its sampled batches, each with its group's UDFs.
nb::dict RunSpans(const exec::UdfRunMetrics& metrics) {
  nb::list starts;
  nb::list batches;
  for (const auto& group : metrics.groups) {
    for (const auto& start : group.worker_starts) {
      nb::dict span;
      span["udfs"] = group.udfs;
      span["worker"] = start.worker;
      span["runtime"] = start.runtime;
      span["index"] = start.index;
      span["pid"] = start.pid;
      span["start_unix_nanos"] = start.start_unix_nanos;
      span["end_unix_nanos"] = start.end_unix_nanos;
      starts.append(span);
    }
    for (const auto& batch : group.batch_spans) {
      nb::dict span;
      span["udfs"] = group.udfs;
      span["batch"] = batch.batch;
      span["worker"] = batch.worker;
      span["index"] = batch.worker_index;
      span["rows_in"] = batch.rows_in;
      span["rows_out"] = batch.rows_out;
      span["bytes_in"] = batch.bytes_in;
      span["bytes_out"] = batch.bytes_out;
      span["worker_nanos"] = batch.worker_nanos;
      span["start_unix_nanos"] = batch.start_unix_nanos;
      span["end_unix_nanos"] = batch.end_unix_nanos;
      batches.append(span);
    }
  }
  nb::dict out;
  out["worker_starts"] = starts;
  out["batches"] = batches;
  return out;
}

class PyRun {
 public:
  explicit PyRun(std::unique_ptr<ResultStream> handle) : handle_(std::move(handle)) {}

  // None while the schema is not known (an aggregate before its first read).
  nb::object schema() const {
    auto schema = handle_->schema();
    return schema == nullptr ? nb::none() : SchemaCapsule(*schema);
  }

  // Returns (schema capsule, array capsule), or None at the end. Waits without
  // the GIL, looking for Ctrl-C: then the run is cancelled and the
  // KeyboardInterrupt raised at once.
  nb::object read_next() {
    auto future = handle_->ReadNextAsync();
    bool interrupted = false;
    {
      nb::gil_scoped_release release;
      while (future.wait_for(kSignalPollInterval) != std::future_status::ready) {
        nb::gil_scoped_acquire acquire;
        if (PyErr_CheckSignals() != 0) {
          interrupted = true;
          break;
        }
      }
    }
    if (interrupted) {
      handle_->Cancel();
      throw nb::python_error();
    }
    std::shared_ptr<arrow::RecordBatch> batch = ValueOrThrow(future.get());
    if (batch == nullptr) return nb::none();
    return BatchCapsules(*batch);
  }

  void cancel() { handle_->Cancel(); }

  // The figures of docs/metrics.md, named as `quiver run --metrics FILE` writes them.
  nb::dict metrics() const {
    const exec::UdfRunMetrics metrics = handle_->metrics();
    nb::dict out;
    out["batches"] = metrics.batches;
    out["rows"] = metrics.rows;
    out["bytes_in"] = metrics.bytes_in;
    out["read_nanos"] = metrics.read_time.count();
    out["udf_nanos"] = metrics.worker_udf_time.count();
    nb::list groups;
    for (const auto& group : metrics.groups) {
      nb::dict entry = WorkerFigures(group.Total());
      entry["udfs"] = group.udfs;
      nb::list workers;
      for (const auto& worker : group.workers) {
        nb::dict figures = WorkerFigures(worker);
        figures["worker"] = worker.worker;
        workers.append(figures);
      }
      entry["workers"] = workers;
      groups.append(entry);
    }
    out["groups"] = groups;
    out["spans"] = RunSpans(metrics);
    return out;
  }

 private:
  std::unique_ptr<ResultStream> handle_;
};

// The options of the grouped and table kinds, named as Session's arguments.
exec::grouped::KindOptions ToKindOptions(std::vector<std::string> group_by, int64_t batch_rows,
                                         int64_t max_group_bytes, int workers, int max_in_flight) {
  exec::grouped::KindOptions options;
  options.group_by = std::move(group_by);
  options.batch_rows = batch_rows;
  options.max_group_bytes = max_group_bytes;
  options.max_group_bytes_label = "max_group_bytes";
  options.workers = workers;
  options.max_batches_in_flight_per_worker = max_in_flight;
  return options;
}

class PyEngine {
 public:
  PyEngine(std::vector<std::string> command, std::string transport, double batch_timeout,
           double start_timeout, std::map<std::string, std::string> environment,
           int max_idle_workers, std::string log_dir, double trace_batches) {
    EngineOptions options;
    options.command = std::move(command);
    options.transport = std::move(transport);
    options.batch_timeout = Milliseconds(batch_timeout);
    options.start_timeout = Milliseconds(start_timeout);
    options.environment = std::move(environment);
    options.max_idle_workers = max_idle_workers;
    options.log_dir = std::move(log_dir);
    options.trace_batches = trace_batches;
    engine_ = ValueOrThrow(Engine::Make(std::move(options)));
  }

  std::unique_ptr<PyRun> map(nb::handle stream, const std::vector<PyUdfCall>& udfs,
                             std::optional<std::vector<std::string>> pass_through,
                             int64_t batch_rows, int workers, int max_in_flight,
                             std::optional<int64_t> batch_bytes) {
    exec::UdfOperatorOptions options;
    if (batch_bytes) options.max_batch_bytes = *batch_bytes;
    for (const auto& call : udfs) options.udfs.push_back(ToUdfCall(call));
    options.pass_through = std::move(pass_through);
    options.pass_through_label = "select";
    options.workers = workers;
    options.max_batches_in_flight_per_worker = max_in_flight;
    const CallInput source(stream);
    arrow::Result<std::unique_ptr<RunHandle>> handle;
    {
      // Opening files, starting workers and their Init wait on the disk and on
      // other processes.
      nb::gil_scoped_release release;
      auto input = source.Open(workers, batch_rows, batch_bytes,
                               input::NeededColumns(options.udfs, options.pass_through));
      handle = input.ok() ? engine_->Map(*std::move(input), std::move(options), batch_rows)
                          : input.status();
    }
    return std::make_unique<PyRun>(ValueOrThrow(std::move(handle)));
  }

  std::unique_ptr<PyRun> apply(nb::handle stream, const PyUdfCall& function,
                               std::vector<std::string> group_by, int64_t batch_rows,
                               int64_t max_group_bytes, int workers, int max_in_flight) {
    exec::UdfCall call = ToUdfCall(function);
    auto options =
        ToKindOptions(std::move(group_by), batch_rows, max_group_bytes, workers, max_in_flight);
    const CallInput source(stream);
    arrow::Result<std::unique_ptr<ResultStream>> handle;
    {
      nb::gil_scoped_release release;  // the workers start and load the function
      auto input = source.Open(workers, batch_rows, std::nullopt, std::nullopt);
      handle = input.ok() ? engine_->Apply(*std::move(input), std::move(call), std::move(options))
                          : input.status();
    }
    return std::make_unique<PyRun>(ValueOrThrow(std::move(handle)));
  }

  std::unique_ptr<PyRun> aggregate(nb::handle stream, const std::vector<PyUdfCall>& udafs,
                                   std::vector<std::string> group_by, int64_t batch_rows,
                                   int64_t max_group_bytes, int workers, int max_in_flight) {
    std::vector<exec::UdfCall> calls;
    for (const auto& udaf : udafs) calls.push_back(ToUdfCall(udaf));
    auto options =
        ToKindOptions(std::move(group_by), batch_rows, max_group_bytes, workers, max_in_flight);
    const CallInput source(stream);
    arrow::Result<std::unique_ptr<ResultStream>> handle;
    {
      nb::gil_scoped_release release;
      auto input = source.Open(workers, batch_rows, std::nullopt, std::nullopt);
      handle = input.ok()
                   ? engine_->Aggregate(*std::move(input), std::move(calls), std::move(options))
                   : input.status();
    }
    return std::make_unique<PyRun>(ValueOrThrow(std::move(handle)));
  }

  std::unique_ptr<PyRun> flat_map(nb::handle stream, const PyUdfCall& udtf,
                                  std::optional<std::vector<std::string>> select,
                                  int64_t batch_rows, int workers, int max_in_flight) {
    exec::UdfCall call = ToUdfCall(udtf);
    auto options = ToKindOptions({}, batch_rows, exec::grouped::KindOptions().max_group_bytes,
                                 workers, max_in_flight);
    const CallInput source(stream);
    arrow::Result<std::unique_ptr<ResultStream>> handle;
    {
      nb::gil_scoped_release release;
      auto input = source.Open(workers, batch_rows, std::nullopt, std::nullopt);
      handle = input.ok() ? engine_->FlatMap(*std::move(input), std::move(call), std::move(select),
                                             std::move(options))
                          : input.status();
    }
    return std::make_unique<PyRun>(ValueOrThrow(std::move(handle)));
  }

  void add_runtime(const std::string& name, std::vector<std::string> command,
                   std::map<std::string, std::string> environment) {
    if (engine_->HasRuntime(name)) return;
    arrow::Status added = engine_->AddRuntime(name, std::move(command), std::move(environment));
    if (!added.ok()) throw StatusError(added);
  }

  bool has_runtime(const std::string& name) const { return engine_->HasRuntime(name); }

  int64_t workers_started() const { return engine_->workers_started(); }

  void close() {
    nb::gil_scoped_release release;  // stopping workers waits for them to exit
    engine_->Close();
  }

  bool closed() const { return engine_->closed(); }

 private:
  static std::chrono::milliseconds Milliseconds(double seconds) {
    // Clamped so that "wait for ever" values such as 1e300 do not overflow.
    const double clamped = std::min(std::max(seconds, 0.0), 1e9);
    return std::chrono::milliseconds(static_cast<int64_t>(clamped * 1000.0 + 0.5));
  }

  std::unique_ptr<Engine> engine_;
};

}  // namespace
}  // namespace quiver::python

NB_MODULE(_engine, m) {
  using quiver::python::PyEngine;
  using quiver::python::PyRun;
  m.doc() = "quiver's engine (C++); use quiver.Session, not this module.";
  // Readers handed to pyarrow may still hold a Run when the interpreter ends.
  nb::set_leak_warnings(false);

  nb::register_exception_translator([](const std::exception_ptr& error, void*) {
    try {
      std::rethrow_exception(error);
    } catch (const quiver::python::StatusError& status_error) {
      quiver::python::RaiseStatus(status_error.status);
    }
  });

  // The transports quiver.Session offers: the registry's list, (names, description) each.
  m.def("transports", [] {
    std::vector<std::tuple<std::vector<std::string>, std::string>> offered;
    for (auto& each : quiver::transport::OfferedTransports()) {
      offered.emplace_back(std::move(each.names), std::move(each.description));
    }
    return offered;
  });

  nb::class_<quiver::python::InputPaths>(m, "InputPaths")
      .def(nb::init<std::vector<std::string>, std::optional<std::string>>(), nb::arg("paths"),
           nb::arg("format") = nb::none(),
           "Files (Parquet, CSV, Arrow IPC) a call reads through the engine's own readers, "
           "one after the other; `format` names theirs, else each file's extension says.");

  nb::class_<PyRun>(m, "Run", nb::is_weak_referenceable())
      .def("schema", &PyRun::schema, "The output schema as an 'arrow_schema' capsule.")
      .def("read_next", &PyRun::read_next,
           "The next batch as (schema capsule, array capsule), or None at the end.")
      .def("cancel", &PyRun::cancel, "Ends the run; its workers go back to the pool.")
      .def("metrics", &PyRun::metrics,
           "The run's figures so far (docs/metrics.md): batches, rows, bytes_in, read_nanos, "
           "udf_nanos and per group of UDFs (and per worker) those of `quiver run --metrics`.");

  nb::class_<PyEngine>(m, "Engine")
      .def(nb::init<std::vector<std::string>, std::string, double, double,
                    std::map<std::string, std::string>, int, std::string, double>(),
           nb::arg("command"), nb::arg("transport"), nb::arg("batch_timeout"),
           nb::arg("start_timeout"), nb::arg("environment"), nb::arg("max_idle_workers"),
           nb::arg("log_dir") = "", nb::arg("trace_batches") = 0.0)
      .def("map", &PyEngine::map, nb::arg("stream"), nb::arg("udfs"), nb::arg("pass_through"),
           nb::arg("batch_rows"), nb::arg("workers"), nb::arg("max_in_flight"),
           nb::arg("batch_bytes") = nb::none())
      .def("apply", &PyEngine::apply, nb::arg("stream"), nb::arg("function"), nb::arg("group_by"),
           nb::arg("batch_rows"), nb::arg("max_group_bytes"), nb::arg("workers"),
           nb::arg("max_in_flight"), "A grouped map (exec::grouped::GroupedMapRun).")
      .def("aggregate", &PyEngine::aggregate, nb::arg("stream"), nb::arg("udafs"),
           nb::arg("group_by"), nb::arg("batch_rows"), nb::arg("max_group_bytes"),
           nb::arg("workers"), nb::arg("max_in_flight"),
           "Grouped aggregates (exec::grouped::GroupedAggRun).")
      .def("flat_map", &PyEngine::flat_map, nb::arg("stream"), nb::arg("udtf"), nb::arg("select"),
           nb::arg("batch_rows"), nb::arg("workers"), nb::arg("max_in_flight"),
           "A table function (exec::grouped::TableFunctionRun).")
      .def("add_runtime", &PyEngine::add_runtime, nb::arg("name"), nb::arg("command"),
           nb::arg("environment"),
           "Adds a pool of workers running `command`, for the UDFs whose runtime is `name`.")
      .def("has_runtime", &PyEngine::has_runtime, nb::arg("name"))
      .def("workers_started", &PyEngine::workers_started)
      .def("close", &PyEngine::close)
      .def("closed", &PyEngine::closed);
}
