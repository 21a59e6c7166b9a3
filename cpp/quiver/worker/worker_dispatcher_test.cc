#include "quiver/worker/worker_dispatcher.h"

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include <arrow/builder.h>
#include <arrow/type.h>

#include <gtest/gtest.h>

#include "quiver/protocol/batch_codec.h"
#include "quiver/testing/python.h"
#include "quiver/testing/status_matchers.h"
#include "quiver/worker/child_process.h"
#include "quiver/worker/worker.h"
#include "quiver/worker/worker_execution.h"

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
  const std::string message = worker.status().message();
  EXPECT_NE(message.find("did not connect within 300 ms"), std::string::npos) << message;
  // What the process was doing when stopped: `sh` waits for its `sleep`.
  EXPECT_NE(message.find("; it was sleeping"), std::string::npos) << message;
}

TEST(WorkerDispatcher, WrongSecretIsRefused) {
  WorkerSpec spec = PythonSpec();
  // The worker falls back on QUIVER_WORKER_SECRET without the engine's pipe.
  spec.command = {"sh", "-c",
                  "unset QUIVER_WORKER_SECRET_FD; QUIVER_WORKER_SECRET=wrong "
                  "exec \"$0\" -m quiver.worker \"$@\"",
                  Python()};
  ASSERT_OK_AND_ASSIGN(auto dispatcher, WorkerDispatcher::Make(spec));
  auto worker = dispatcher->Acquire();
  ASSERT_FALSE(worker.ok());
  EXPECT_NE(worker.status().message().find("wrong secret"), std::string::npos)
      << worker.status().ToString();
}

// A gRPC worker started by hand, as an operator would run a worker service.
struct RemoteService {
  std::string directory;
  std::string endpoint;
  std::unique_ptr<ChildProcess> process;

  explicit RemoteService(const std::string& secret) {
    char pattern[] = "/tmp/quiver-remote-XXXXXX";
    directory = ::mkdtemp(pattern);
    endpoint = "grpc+unix:" + directory + "/worker.sock";
    process = ChildProcess::Spawn({Python(), "-m", "quiver.worker", "--transport", "grpc", "--id",
                                   "service", "--connection", endpoint},
                                  {{"QUIVER_WORKER_SECRET", secret}}, 64 * 1024)
                  .ValueOrDie();
  }
  ~RemoteService() {
    process.reset();
    std::filesystem::remove_all(directory);
  }
};

TEST(WorkerDispatcher, ConnectsToARunningRemoteWorker) {
  RemoteService service("remote-secret");
  WorkerSpec spec = PythonSpec();
  spec.remote_workers = {{service.endpoint, "remote-secret", ""}};
  ASSERT_OK_AND_ASSIGN(auto dispatcher, WorkerDispatcher::Make(spec));
  ASSERT_OK_AND_ASSIGN(auto worker, dispatcher->Acquire());
  EXPECT_TRUE(worker->remote());
  v1::Init init;
  init.set_protocol_version(1);
  init.set_data_format(v1::ARROW_IPC_STREAM);
  auto schema = arrow::schema({arrow::field("text", arrow::utf8())});
  init.set_input_schema(*protocol::SerializeSchema(*schema));
  auto* udf = init.add_udfs();
  udf->set_name("same");
  udf->set_payload_format("python/ref");
  udf->set_payload(std::string(QUIVER_TESTING_UDFS) + "/conformance_udfs.py:identity");
  udf->add_argument_offsets(0);
  ASSERT_OK_AND_ASSIGN(auto session, WorkerExecution::Start(worker.get(), init));
  ASSERT_OK(session->WaitUntilReady());
  arrow::StringBuilder texts;
  ASSERT_OK(texts.AppendValues({"a", "b"}));
  auto batch = arrow::RecordBatch::Make(schema, 2, {*texts.Finish()});
  ASSERT_OK(session->Send(0, *batch));
  ASSERT_OK_AND_ASSIGN(auto result, session->Receive(0, 2));
  EXPECT_TRUE(result->column(0)->Equals(*batch->column(0)));
  ASSERT_OK(session->Finish().status());
  EXPECT_EQ(dispatcher->workers_started(), 1);
}

TEST(WorkerDispatcher, RemoteWorkerRefusesAWrongSecret) {
  RemoteService service("right-secret");
  WorkerSpec spec = PythonSpec();
  spec.remote_workers = {{service.endpoint, "wrong-secret", ""}};
  ASSERT_OK_AND_ASSIGN(auto dispatcher, WorkerDispatcher::Make(spec));
  // The service may still be starting: a refusal must come once it answers.
  arrow::Status status;
  for (int attempt = 0; attempt < 100; ++attempt) {
    status = dispatcher->Acquire().status();
    if (status.message().find("UNAUTHENTICATED") != std::string::npos ||
        status.message().find("secret") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(milliseconds(100));
  }
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("secret"), std::string::npos) << status.ToString();
}

}  // namespace
}  // namespace quiver::worker
