// UDFs of several runtimes in one run: one UdfRun per runtime, each on its own
// workers, all reading the same input through a tee; their results are put
// beside each other in the order of the UDFs.

#include <deque>
#include <limits>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <arrow/compute/expression.h>
#include <arrow/type.h>

#include "quiver/exec/batch_bytes.h"
#include "quiver/exec/udf_run_internal.h"
#include "quiver/worker/worker_dispatcher.h"

namespace quiver::exec::internal {
namespace {

// Hands every batch of one input to each of several readers. A reader that is
// ahead keeps the batches the others have not read yet; the runs read in
// lockstep (one output batch each per output batch), so a queue holds at most
// one run's window.
class BatchTee : public std::enable_shared_from_this<BatchTee> {
 public:
  BatchTee(std::shared_ptr<arrow::RecordBatchReader> input, size_t readers)
      : input_(std::move(input)), queues_(readers) {}

  std::shared_ptr<arrow::RecordBatchReader> Reader(size_t index);

  arrow::Status Next(size_t index, std::shared_ptr<arrow::RecordBatch>* out) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto& queue = queues_[index];
    if (queue.empty() && !done_) {
      std::shared_ptr<arrow::RecordBatch> batch;
      failure_ = input_->ReadNext(&batch);
      if (failure_.ok() && batch != nullptr) {
        for (auto& each : queues_) each.push_back(batch);
      } else {
        done_ = true;
      }
    }
    if (queue.empty()) {
      *out = nullptr;
      return failure_;
    }
    *out = std::move(queue.front());
    queue.pop_front();
    return arrow::Status::OK();
  }

  const std::shared_ptr<arrow::Schema>& schema() const { return schema_; }

 private:
  std::shared_ptr<arrow::RecordBatchReader> input_;
  std::shared_ptr<arrow::Schema> schema_ = input_->schema();
  std::mutex mutex_;
  std::vector<std::deque<std::shared_ptr<arrow::RecordBatch>>> queues_;
  bool done_ = false;
  arrow::Status failure_;
};

class TeeReader : public arrow::RecordBatchReader {
 public:
  TeeReader(std::shared_ptr<BatchTee> tee, size_t index) : tee_(std::move(tee)), index_(index) {}
  std::shared_ptr<arrow::Schema> schema() const override { return tee_->schema(); }
  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* out) override {
    return tee_->Next(index_, out);
  }

 private:
  std::shared_ptr<BatchTee> tee_;
  size_t index_;
};

std::shared_ptr<arrow::RecordBatchReader> BatchTee::Reader(size_t index) {
  return std::make_shared<TeeReader>(shared_from_this(), index);
}

// The UDFs of one runtime, and where their results go in the output.
struct RuntimeGroup {
  std::string runtime;
  std::vector<UdfCall> udfs;
  std::vector<int> positions;  // index in UdfOperatorOptions::udfs of each UDF
  std::shared_ptr<UdfRun> run;
};

std::string RuntimeLabel(const std::string& runtime, worker::WorkerDispatcher* dispatcher) {
  std::string command;
  for (const auto& part : dispatcher->spec().command)
    command += (command.empty() ? "" : " ") + part;
  return " (runtime '" + runtime + "', worker command: " + command + ")";
}

class RuntimeRuns : public UdfRun {
 public:
  RuntimeRuns(std::vector<RuntimeGroup> groups, int pass_through_columns)
      : groups_(std::move(groups)), pass_through_columns_(pass_through_columns) {
    // The first group's run carries the pass-through columns, then its results.
    const auto& first = *groups_.front().run->schema();
    arrow::FieldVector fields(first.fields().begin(),
                              first.fields().begin() + pass_through_columns_);
    udf_count_ = 0;
    for (const auto& group : groups_) udf_count_ += static_cast<int>(group.udfs.size());
    fields.resize(pass_through_columns_ + udf_count_);
    for (size_t g = 0; g < groups_.size(); ++g) {
      const auto& schema = *groups_[g].run->schema();
      const int offset = g == 0 ? pass_through_columns_ : 0;
      for (size_t i = 0; i < groups_[g].positions.size(); ++i) {
        fields[pass_through_columns_ + groups_[g].positions[i]] = schema.field(offset + i);
      }
    }
    schema_ = arrow::schema(std::move(fields));
  }

  std::shared_ptr<arrow::Schema> schema() const override { return schema_; }

  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* out) override {
    *out = nullptr;
    std::vector<std::shared_ptr<arrow::RecordBatch>> parts(groups_.size());
    for (size_t g = 0; g < groups_.size(); ++g) {
      ARROW_RETURN_NOT_OK(groups_[g].run->ReadNext(&parts[g]));
    }
    if (parts.front() == nullptr) return arrow::Status::OK();
    const int64_t rows = parts.front()->num_rows();
    arrow::ArrayVector columns(pass_through_columns_ + udf_count_);
    for (int i = 0; i < pass_through_columns_; ++i) columns[i] = parts.front()->column(i);
    for (size_t g = 0; g < groups_.size(); ++g) {
      if (parts[g] == nullptr || parts[g]->num_rows() != rows) {
        return arrow::Status::UnknownError("the runs of runtimes '", groups_.front().runtime,
                                           "' and '", groups_[g].runtime,
                                           "' went out of step; this is a bug in quiver");
      }
      const int offset = g == 0 ? pass_through_columns_ : 0;
      for (size_t i = 0; i < groups_[g].positions.size(); ++i) {
        columns[pass_through_columns_ + groups_[g].positions[i]] = parts[g]->column(offset + i);
      }
    }
    *out = arrow::RecordBatch::Make(schema_, rows, std::move(columns));
    return arrow::Status::OK();
  }

  arrow::Status Close() override {
    arrow::Status status;
    for (auto& group : groups_) status &= group.run->Close();
    return status;
  }

  UdfRunMetrics metrics() const override {
    // Every run reads the same input: count it once, add up the workers' time.
    UdfRunMetrics total = groups_.front().run->metrics();
    for (size_t g = 1; g < groups_.size(); ++g) {
      UdfRunMetrics group = groups_[g].run->metrics();
      total.worker_udf_time += group.worker_udf_time;
      total.groups.insert(total.groups.end(), group.groups.begin(), group.groups.end());
    }
    return total;
  }

 private:
  std::vector<RuntimeGroup> groups_;
  int pass_through_columns_;
  int udf_count_ = 0;
  std::shared_ptr<arrow::Schema> schema_;
};

std::vector<RuntimeGroup> GroupByRuntime(const UdfOperatorOptions& options) {
  std::vector<RuntimeGroup> groups;
  for (size_t i = 0; i < options.udfs.size(); ++i) {
    const auto& udf = options.udfs[i];
    RuntimeGroup* group = nullptr;
    for (auto& each : groups) {
      if (each.runtime == udf.runtime) group = &each;
    }
    if (group == nullptr) group = &groups.emplace_back(RuntimeGroup{udf.runtime, {}, {}, nullptr});
    group->udfs.push_back(udf);
    group->positions.push_back(static_cast<int>(i));
  }
  return groups;
}

// Returns the indices of the input columns the UDFs' arguments read.
std::vector<int> ArgumentColumns(const UdfOperatorOptions& options, const arrow::Schema& input) {
  std::set<int> columns;
  for (const auto& udf : options.udfs) {
    for (const auto& argument : udf.arguments) {
      for (const auto& ref : arrow::compute::FieldsInExpression(argument)) {
        auto path = ref.FindOneOrNone(input);
        if (path.ok() && !path->empty()) columns.insert((*path)[0]);
      }
    }
  }
  return {columns.begin(), columns.end()};
}

}  // namespace

arrow::Result<std::shared_ptr<UdfRun>> StartRuntimeRuns(
    const RuntimeDispatchers& dispatchers, bool name_runtimes, const UdfOperatorOptions& options,
    std::shared_ptr<arrow::RecordBatchReader> input) {
  std::vector<RuntimeGroup> groups = GroupByRuntime(options);
  auto label = [&](const RuntimeGroup& group) {
    return name_runtimes ? RuntimeLabel(group.runtime, dispatchers.at(group.runtime)) : "";
  };
  if (groups.size() == 1) {
    return StartUdfRun(dispatchers.at(groups.front().runtime), options, std::move(input),
                       label(groups.front()));
  }
  // Every runtime's run must cut a batch at the same rows: the batches are cut
  // once, before the tee, by the bytes of the columns any argument reads.
  std::vector<int> measured = ArgumentColumns(options, *input->schema());
  input = CapBatchBytes(std::move(input), std::move(measured), options.max_batch_bytes);
  auto tee = std::make_shared<BatchTee>(input, groups.size());
  int pass_through_columns = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    UdfOperatorOptions group_options = options;
    group_options.udfs = groups[g].udfs;
    group_options.max_batch_bytes = std::numeric_limits<int64_t>::max();  // cut above
    // The pass-through columns travel with the first runtime's results only.
    if (g > 0) group_options.pass_through = std::vector<std::string>{};
    ARROW_ASSIGN_OR_RAISE(
        groups[g].run, StartUdfRun(dispatchers.at(groups[g].runtime), group_options, tee->Reader(g),
                                   label(groups[g])));
    if (g == 0) {
      pass_through_columns =
          groups[g].run->schema()->num_fields() - static_cast<int>(groups[g].udfs.size());
    }
  }
  return std::make_shared<RuntimeRuns>(std::move(groups), pass_through_columns);
}

}  // namespace quiver::exec::internal
