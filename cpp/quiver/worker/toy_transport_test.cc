// A transport registered from this file, not from the dispatcher: the "toy"
// scheme carries the quiver.v1 framing over a Unix socket, as the built-in one
// does, and counts what crosses it. An execution through it proves that the
// dispatcher reaches workers only through the registry.

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <arrow/builder.h>
#include <arrow/type.h>

#include "quiver/protocol/batch_codec.h"
#include "quiver/testing/python.h"
#include "quiver/testing/status_matchers.h"
#include "quiver/transport/registry.h"
#include "quiver/worker/worker.h"
#include "quiver/worker/worker_dispatcher.h"
#include "quiver/worker/worker_execution.h"
#include "quiver/worker/wrapped_unix_transport_testing.h"

namespace quiver::worker {
namespace {

std::atomic<int> batches_sent{0};
std::atomic<int> replies_received{0};

// Counts batches and replies, passing everything on to `inner`.
class CountingConnection : public transport::Connection {
 public:
  explicit CountingConnection(std::unique_ptr<transport::Connection> inner)
      : inner_(std::move(inner)) {}
  arrow::Status SendControl(const v1::EngineMessage& message, io::Deadline deadline) override {
    return inner_->SendControl(message, deadline);
  }
  arrow::Status SendBatch(uint64_t sequence, const arrow::RecordBatch& batch,
                          io::Deadline deadline) override {
    ++batches_sent;
    return inner_->SendBatch(sequence, batch, deadline);
  }
  arrow::Result<transport::WorkerReply> Receive(io::Deadline deadline) override {
    auto reply = inner_->Receive(deadline);
    if (reply.ok()) ++replies_received;
    return reply;
  }
  void Shutdown() override { inner_->Shutdown(); }
  std::string endpoint() const override { return "toy:" + inner_->endpoint(); }

 private:
  std::unique_ptr<transport::Connection> inner_;
};

// The Python worker speaks the framing at the toy's "unix:" endpoint.
std::shared_ptr<transport::Transport> MakeToyTransport() {
  return std::make_shared<testing::WrappedUnixTransport>(
      [](std::unique_ptr<transport::Connection> inner) {
        return std::make_unique<CountingConnection>(std::move(inner));
      });
}

const transport::TransportRegistration kToy({"toy"}, MakeToyTransport());

TEST(ToyTransport, IsFoundInTheRegistryBesideTheBuiltInOnes) {
  const auto names = transport::TransportNames();
  for (const char* name : {"toy", "uds", "unix", "grpc+unix", "grpc+tcp"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
  }
  EXPECT_EQ(transport::EndpointScheme("grpc+tcp:127.0.0.1:80"), "grpc+tcp");
  EXPECT_FALSE(transport::RegisterTransport({"toy"}, MakeToyTransport()).ok());
  WorkerSpec spec;
  spec.command = {"python"};
  spec.transport = "carrier-pigeon";
  auto unknown = WorkerDispatcher::Make(spec);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("unknown transport 'carrier-pigeon'"),
            std::string::npos)
      << unknown.status().ToString();
}

TEST(ToyTransport, RunsAnExecution) {
  WorkerSpec spec;
  spec.command = PythonWorkerCommand(quiver::testing::PythonForWorkers());
  spec.transport = "toy";
  spec.stop_grace = std::chrono::milliseconds(500);
  ASSERT_OK_AND_ASSIGN(auto dispatcher, WorkerDispatcher::Make(spec));
  ASSERT_OK_AND_ASSIGN(auto worker, dispatcher->Acquire());
  EXPECT_EQ(worker->connection().endpoint().rfind("toy:unix:", 0), 0u)
      << worker->connection().endpoint();

  auto schema = arrow::schema({arrow::field("text", arrow::utf8())});
  v1::Init init;
  init.set_protocol_version(1);
  init.set_data_format(v1::ARROW_IPC_STREAM);
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
  EXPECT_EQ(batches_sent.load(), 1);
  // Hello, InitResponse, the result and FinishResponse.
  EXPECT_GE(replies_received.load(), 4);
}

}  // namespace
}  // namespace quiver::worker
