#include "quiver/worker/worker_dispatcher.h"

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "quiver/testing/python.h"
#include "quiver/testing/status_matchers.h"
#include "quiver/worker/worker.h"

namespace quiver::worker {
namespace {

using std::chrono::milliseconds;

std::string Python() { return quiver::testing::PythonForWorkers(); }

WorkerSpec PythonSpec() {
  WorkerSpec spec;
  spec.command = PythonWorkerCommand(Python());
  spec.start_timeout = milliseconds(20000);
  spec.stop_grace = milliseconds(500);
  return spec;
}

TEST(WorkerDispatcher, StartsAuthenticatesAndReusesAWorker) {
  ASSERT_OK_AND_ASSIGN(auto dispatcher, WorkerDispatcher::Make(PythonSpec()));
  ASSERT_OK_AND_ASSIGN(auto worker, dispatcher->Acquire());
  const pid_t pid = worker->pid();
  dispatcher->Release(std::move(worker));
  ASSERT_OK_AND_ASSIGN(auto again, dispatcher->Acquire());
  EXPECT_EQ(again->pid(), pid);
  EXPECT_EQ(dispatcher->workers_started(), 1);
  // A broken worker is not reused: the next one is a new process.
  again->MarkBroken();
  dispatcher->Release(std::move(again));
  ASSERT_OK_AND_ASSIGN(auto fresh, dispatcher->Acquire());
  EXPECT_NE(fresh->pid(), pid);
  EXPECT_EQ(dispatcher->workers_started(), 2);
}

TEST(WorkerDispatcher, MissingCommandIsAClearError) {
  WorkerSpec spec = PythonSpec();
  spec.command = {"/nonexistent/python"};
  ASSERT_OK_AND_ASSIGN(auto dispatcher, WorkerDispatcher::Make(spec));
  auto worker = dispatcher->Acquire();
  ASSERT_FALSE(worker.ok());
  EXPECT_NE(worker.status().message().find("cannot start worker command '/nonexistent/python'"),
            std::string::npos);
}

TEST(WorkerDispatcher, WorkerThatExitsEarlyIsReportedWithItsOutput) {
  WorkerSpec spec = PythonSpec();
  spec.command = {"sh", "-c", "echo 'ModuleNotFoundError: no quiver here' >&2; exit 4", "sh"};
  ASSERT_OK_AND_ASSIGN(auto dispatcher, WorkerDispatcher::Make(spec));
  auto worker = dispatcher->Acquire();
  ASSERT_FALSE(worker.ok());
  const std::string message = worker.status().message();
  EXPECT_NE(message.find("exited with status 4 before it connected"), std::string::npos) << message;
  EXPECT_NE(message.find("no quiver here"), std::string::npos) << message;
}

TEST(WorkerDispatcher, WorkerThatNeverConnectsTimesOut) {
  WorkerSpec spec = PythonSpec();
  spec.command = {"sh", "-c", "sleep 30", "sh"};
  spec.start_timeout = milliseconds(300);
  ASSERT_OK_AND_ASSIGN(auto dispatcher, WorkerDispatcher::Make(spec));
  auto worker = dispatcher->Acquire();
  ASSERT_FALSE(worker.ok());
  EXPECT_NE(worker.status().message().find("did not connect within 300 ms"), std::string::npos);
}

TEST(WorkerDispatcher, WrongSecretIsRefused) {
  WorkerSpec spec = PythonSpec();
  spec.command = {"sh", "-c", "QUIVER_WORKER_SECRET=wrong exec \"$0\" -m quiver.worker \"$@\"",
                  Python()};
  ASSERT_OK_AND_ASSIGN(auto dispatcher, WorkerDispatcher::Make(spec));
  auto worker = dispatcher->Acquire();
  ASSERT_FALSE(worker.ok());
  EXPECT_NE(worker.status().message().find("wrong secret"), std::string::npos)
      << worker.status().ToString();
}

}  // namespace
}  // namespace quiver::worker
