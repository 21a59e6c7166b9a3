// Runs many executions through one UdfOperator and checks that what the engine
// holds stays flat: descriptors, threads, child processes and resident memory.

#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include <arrow/builder.h>
#include <arrow/compute/expression.h>
#include <arrow/type.h>

#include "quiver/exec/udf_operator.h"
#include "quiver/testing/python.h"
#include "quiver/testing/status_matchers.h"
#include "quiver/worker/worker_dispatcher.h"

namespace quiver::exec {
namespace {

namespace cp = arrow::compute;
using std::chrono::milliseconds;

#if defined(__SANITIZE_ADDRESS__)
#define QUIVER_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QUIVER_UNDER_ASAN 1
#endif
#endif

#ifdef QUIVER_UNDER_ASAN
// Sanitized code runs several times slower, and ASan's quarantine holds freed
// memory on purpose: fewer executions, and resident memory is not judged.
constexpr int kExecutions = 200;
constexpr bool kJudgeMemory = false;
#else
constexpr int kExecutions = 1000;
constexpr bool kJudgeMemory = true;
#endif

const std::string kUdfs = std::string(QUIVER_EXEC_TESTDATA) + "/operator_udfs.py";

int CountEntries(const std::string& directory) {
  DIR* dir = ::opendir(directory.c_str());
  if (dir == nullptr) return -1;
  int count = 0;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  ::closedir(dir);
  return count - (directory == "/proc/self/fd" ? 1 : 0);  // the one opendir holds
}

// Processes whose parent is this one (the workers), from /proc/*/stat.
int CountChildren() {
  DIR* proc = ::opendir("/proc");
  int count = 0;
  while (const dirent* entry = ::readdir(proc)) {
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    std::ifstream stat(std::string("/proc/") + entry->d_name + "/stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    // "pid (comm) state ppid ...": comm may hold spaces, so parse after the last ')'.
    std::istringstream rest(line.substr(line.rfind(')') + 2));
    char state = 0;
    int parent = 0;
    rest >> state >> parent;
    if (parent == ::getpid()) ++count;
  }
  ::closedir(proc);
  return count;
}

int64_t ResidentKiB() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

struct Usage {
  int fds = 0;
  int threads = 0;
  int children = 0;
  int64_t resident_kib = 0;
};

Usage Measure() {
  return {CountEntries("/proc/self/fd"), CountEntries("/proc/self/task"), CountChildren(),
          ResidentKiB()};
}

UdfCall Call(std::string name, const std::string& function) {
  UdfCall call;
  call.name = std::move(name);
  call.payload = kUdfs + ":" + function;
  call.arguments = {cp::field_ref("id")};
  return call;
}

// `count` batches of `rows` ids starting at `first`.
std::shared_ptr<arrow::RecordBatchReader> Ids(int count, int rows, int64_t first) {
  auto schema = arrow::schema({arrow::field("id", arrow::int64())});
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  for (int b = 0; b < count; ++b) {
    arrow::Int64Builder ids;
    for (int r = 0; r < rows; ++r) EXPECT_OK(ids.Append(first++));
    batches.push_back(arrow::RecordBatch::Make(schema, rows, {*ids.Finish()}));
  }
  return arrow::RecordBatchReader::Make(batches, schema).ValueOrDie();
}

// One execution of kind `i % 10`: 0 fails in the UDF (a batch holds 7), 5 is
// cancelled after its first batch, the rest succeed.
void Execute(UdfOperator* ok_operator, UdfOperator* failing_operator, int i) {
  if (i % 10 == 0) {
    ASSERT_OK_AND_ASSIGN(auto run, failing_operator->Execute(Ids(3, 4, 0)));
    auto all = run->ToRecordBatches();
    ASSERT_FALSE(all.ok()) << "execution " << i;
    EXPECT_NE(all.status().message().find("seven is not allowed"), std::string::npos);
    return;
  }
  ASSERT_OK_AND_ASSIGN(auto run, ok_operator->Execute(Ids(4, 16, 100)));
  if (i % 10 == 5) {
    std::shared_ptr<arrow::RecordBatch> first;
    ASSERT_OK(run->ReadNext(&first));
    ASSERT_NE(first, nullptr);
    ASSERT_OK(run->Close());  // the rest of the run is cancelled
    return;
  }
  ASSERT_OK_AND_ASSIGN(auto all, run->ToRecordBatches());
  ASSERT_EQ(all.size(), 4u);
  const auto& next = static_cast<const arrow::Int64Array&>(*all[3]->column(1));
  EXPECT_EQ(next.Value(15), 100 + 63 + 1);
}

TEST(UdfOperatorLeaks, ManyExecutionsKeepDescriptorsThreadsChildrenAndMemoryFlat) {
  worker::WorkerSpec spec;
  spec.command = worker::PythonWorkerCommand(quiver::testing::PythonForWorkers());
  spec.batch_timeout = milliseconds(30000);
  spec.stop_grace = milliseconds(500);
  ASSERT_OK_AND_ASSIGN(auto dispatcher, worker::WorkerDispatcher::Make(spec));
  UdfOperatorOptions ok_options;
  ok_options.udfs = {Call("next", "plus_one")};
  UdfOperatorOptions failing_options;
  failing_options.udfs = {Call("checked", "fails_on_seven")};
  ASSERT_OK_AND_ASSIGN(auto ok_operator, UdfOperator::Make(dispatcher.get(), ok_options));
  ASSERT_OK_AND_ASSIGN(auto failing_operator, UdfOperator::Make(dispatcher.get(), failing_options));

  // Warm up: the worker is started, Arrow's pools and the allocator settle.
  for (int i = 0; i < 20; ++i) Execute(ok_operator.get(), failing_operator.get(), i);
  const Usage before = Measure();
  for (int i = 0; i < kExecutions && !HasFatalFailure(); ++i) {
    Execute(ok_operator.get(), failing_operator.get(), i);
  }
  const Usage after = Measure();

  EXPECT_EQ(dispatcher->workers_started(), 1) << "the worker was not reused";
  EXPECT_EQ(after.fds, before.fds) << "descriptors leaked";
  EXPECT_EQ(after.threads, before.threads) << "threads leaked";
  EXPECT_EQ(after.children, before.children) << "child processes leaked";
  EXPECT_EQ(after.children, 1) << "one idle worker";
  if (kJudgeMemory) {
    // Tolerance: allocator caches and Arrow's pools, not per-execution growth.
    EXPECT_LT(after.resident_kib - before.resident_kib, 32 * 1024)
        << "resident memory grew from " << before.resident_kib << " KiB to " << after.resident_kib
        << " KiB over " << kExecutions << " executions";
  }
  std::printf(
      "%d executions: fds %d -> %d, threads %d -> %d, children %d -> %d, RSS %lld -> %lld KiB\n",
      kExecutions, before.fds, after.fds, before.threads, after.threads, before.children,
      after.children, static_cast<long long>(before.resident_kib),
      static_cast<long long>(after.resident_kib));
}

}  // namespace
}  // namespace quiver::exec
