// quiver._worker_loop: the Python worker's per-batch path in native code (nanobind).
//
// A module of its own rather than a part of quiver._engine: a worker process
// loads it at start, and it needs only the Arrow C++ that pyarrow has loaded
// already (quiver._engine brings the whole engine, gRPC included).
//
// Batches cross into Python through the Arrow C data interface: the loop
// exports each decoded batch into an ArrowArray whose address Python imports
// against the schema it holds (pa.RecordBatch._import_from_c), and Python
// exports the result into a second ArrowArray the loop imports against the
// result schema. Exceptions Python raises in a callback (SIGTERM's) unwind the
// loop and are raised again from serve().

#include <Python.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>

#include <arrow/c/abi.h>
#include <arrow/c/bridge.h>
#include <arrow/record_batch.h>
#include <arrow/status.h>
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/unique_ptr.h>

#include "quiver/python/worker_loop.h"

namespace nb = nanobind;

namespace quiver::python {
namespace {

// What run_batch's return value asks of the loop (quiver/worker/native_batches.py).
constexpr int kSendResult = 0;
constexpr int kAnswered = 1;
constexpr int kLeave = 2;

// Releases an ArrowArray that was not moved into Arrow C++ or pyarrow.
struct ArrowArrayGuard {
  ArrowArray array{};
  ~ArrowArrayGuard() {
    if (array.release != nullptr) array.release(&array);
  }
};

// The Python side of one serve() call: runs the callbacks with the GIL held
// and keeps the first exception Python raised, to be raised again.
class PythonSide {
 public:
  PythonSide(nb::callable run_batch, nb::callable send_data)
      : run_batch_(std::move(run_batch)), send_data_(std::move(send_data)) {}

  BatchLoopCallbacks Callbacks(const std::shared_ptr<arrow::Schema>& result_schema) {
    BatchLoopCallbacks callbacks;
    callbacks.run_batch = [this, result_schema](uint64_t sequence,
                                                std::shared_ptr<arrow::RecordBatch> batch) {
      return RunBatch(sequence, *batch, result_schema);
    };
    callbacks.send_elsewhere = [this](uint64_t sequence, std::shared_ptr<arrow::Buffer> body) {
      nb::gil_scoped_acquire gil;
      return Call([&] {
        send_data_(sequence, nb::bytes(reinterpret_cast<const char*>(body->data()),
                                       static_cast<size_t>(body->size())));
      });
    };
    callbacks.interrupted = [this] {
      nb::gil_scoped_acquire gil;
      if (PyErr_CheckSignals() == 0) return arrow::Status::OK();
      raised_.emplace();
      return arrow::Status::Cancelled("a signal handler raised");
    };
    return callbacks;
  }

  // Raises what Python raised in a callback, if it did (with the GIL held).
  void RaiseIfRaised() {
    if (raised_.has_value()) {
      nb::python_error error = std::move(*raised_);
      raised_.reset();
      throw error;
    }
  }

 private:
  arrow::Result<BatchAnswer> RunBatch(uint64_t sequence, const arrow::RecordBatch& batch,
                                      const std::shared_ptr<arrow::Schema>& result_schema) {
    ArrowArrayGuard in;
    ArrowArrayGuard out;
    ARROW_RETURN_NOT_OK(arrow::ExportRecordBatch(batch, &in.array));
    int code = kLeave;
    {
      nb::gil_scoped_acquire gil;
      ARROW_RETURN_NOT_OK(Call([&] {
        code = nb::cast<int>(run_batch_(sequence, reinterpret_cast<uintptr_t>(&in.array),
                                        reinterpret_cast<uintptr_t>(&out.array)));
      }));
    }
    BatchAnswer answer;
    answer.leave = code == kLeave;
    if (code == kSendResult) {
      ARROW_ASSIGN_OR_RAISE(answer.result, arrow::ImportRecordBatch(&out.array, result_schema));
    } else if (code != kAnswered && code != kLeave) {
      return arrow::Status::Invalid("run_batch returned ", code, " (0, 1 or 2 expected)");
    }
    return answer;
  }

  // Runs `body` (GIL held), turning a Python exception into a failed Status.
  template <typename Body>
  arrow::Status Call(Body&& body) {
    try {
      body();
    } catch (nb::python_error& error) {
      raised_.emplace(std::move(error));
      return arrow::Status::Cancelled("Python raised");
    } catch (const nb::cast_error&) {
      return arrow::Status::TypeError("run_batch must return an int");
    }
    return arrow::Status::OK();
  }

  nb::callable run_batch_;
  nb::callable send_data_;
  std::optional<nb::python_error> raised_;
};

// A loop and the schema its results are imported against.
class PyBatchLoop {
 public:
  PyBatchLoop(std::unique_ptr<WorkerBatchLoop> loop, std::shared_ptr<arrow::Schema> result_schema)
      : loop_(std::move(loop)), result_schema_(std::move(result_schema)) {}

  std::tuple<nb::bytes, int, int, nb::object> Serve(nb::callable run_batch,
                                                    nb::callable send_data) {
    PythonSide python(std::move(run_batch), std::move(send_data));
    arrow::Result<LoopExit> exit;
    {
      nb::gil_scoped_release released;
      exit = loop_->Serve(python.Callbacks(result_schema_));
    }
    python.RaiseIfRaised();  // Python's exception (SIGTERM's) comes first: it ends the worker
    if (!exit.ok()) throw std::runtime_error(exit.status().ToString());
    nb::object unanswered = nb::none();
    if (exit->unanswered) {
      unanswered = nb::make_tuple(exit->unanswered_sequence, exit->unanswered_reason);
    }
    return {nb::bytes(exit->unread.data(), exit->unread.size()), exit->read_error,
            exit->write_error, unanswered};
  }

  int64_t TakeCodecNanos() { return loop_->TakeCodecNanos(); }

 private:
  std::unique_ptr<WorkerBatchLoop> loop_;
  std::shared_ptr<arrow::Schema> result_schema_;
};

std::unique_ptr<PyBatchLoop> MakeLoop(int fd, nb::bytes schema_message,
                                      nb::bytes result_schema_message,
                                      int64_t max_inline_result_bytes) {
  std::string_view input(schema_message.c_str(), schema_message.size());
  std::string_view result(result_schema_message.c_str(), result_schema_message.size());
  auto loop = WorkerBatchLoop::Make(fd, input, result, max_inline_result_bytes);
  if (!loop.ok()) throw nb::value_error(loop.status().message().c_str());
  auto result_schema = (*loop)->result_schema();
  return std::make_unique<PyBatchLoop>(std::move(loop).ValueUnsafe(), std::move(result_schema));
}

}  // namespace
}  // namespace quiver::python

NB_MODULE(_worker_loop, m) {
  using quiver::python::PyBatchLoop;
  m.doc() =
      "The Python worker's per-batch path in C++; used by quiver.worker, not meant to be "
      "called directly.";
  m.attr("SEND_RESULT") = quiver::python::kSendResult;
  m.attr("ANSWERED") = quiver::python::kAnswered;
  m.attr("LEAVE") = quiver::python::kLeave;
  nb::class_<PyBatchLoop>(m, "BatchLoop")
      .def("serve", &PyBatchLoop::Serve, nb::arg("run_batch"), nb::arg("send_data"),
           "Serve Data frames until another frame, EOF or run_batch's LEAVE; return "
           "(unread bytes, read errno, write errno, None or (sequence, reason) of a batch "
           "left unanswered).")
      .def("take_codec_nanos", &PyBatchLoop::TakeCodecNanos,
           "Return the nanoseconds spent decoding and encoding since the last call.");
  m.def("make_loop", &quiver::python::MakeLoop, nb::arg("fd"), nb::arg("schema_message"),
        nb::arg("result_schema_message"), nb::arg("max_inline_result_bytes"),
        "Make the batch loop of one execution on the connected socket `fd` (borrowed).");
}
