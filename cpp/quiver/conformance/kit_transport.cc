#include "quiver/conformance/kit_transport.h"

#include <unistd.h>

#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "quiver/io/unix_socket.h"
#include "quiver/transport/registry.h"
#include "quiver/transport/shm/shm_connection.h"
#include "quiver/transport/uds/uds_connection.h"

namespace quiver::conformance {
namespace {

std::mutex records_mutex;
std::map<pid_t, std::shared_ptr<StartedWorker>> records;

void Record(pid_t pid, std::shared_ptr<StartedWorker> worker) {
  std::lock_guard<std::mutex> lock(records_mutex);
  records[pid] = std::move(worker);
}

// The uds endpoint of an engine, except that the Hello is recorded rather than
// judged: the kit's "hello" scenario checks it and names what is wrong.
class KitUdsEndpoint : public transport::WorkerEndpoint {
 public:
  /// `shm`: after recording the first message, hand the worker its arenas as
  /// the shm transport does.
  KitUdsEndpoint(std::string path, io::UniqueFd listener, transport::EndpointOptions options,
                 bool shm = false)
      : path_(std::move(path)),
        listener_(std::move(listener)),
        options_(std::move(options)),
        shm_(shm) {}

  ~KitUdsEndpoint() override {
    if (listener_.valid()) ::unlink(path_.c_str());
  }

  std::string endpoint() const override { return (shm_ ? "shm:" : "unix:") + path_; }
  std::vector<std::string> worker_arguments() const override { return {}; }
  transport::Readiness readiness() const override { return {"connect", "connected"}; }

  arrow::Result<std::unique_ptr<transport::Connection>> Accept(transport::WorkerProcess& process,
                                                               const std::string& secret,
                                                               io::Deadline step,
                                                               io::Deadline deadline) override {
    ARROW_ASSIGN_OR_RAISE(auto socket, io::AcceptUnixSocket(listener_, step));
    if (!socket) return nullptr;
    listener_.Reset();
    ::unlink(path_.c_str());
    auto record = std::make_shared<StartedWorker>();
    record->transport = shm_ ? "shm" : "uds";
    record->endpoint = endpoint();
    record->worker_id = options_.worker_id;
    record->secret = secret;
    record->raw_socket = io::UniqueFd(::dup(socket->get()));
    if (shm_) {
      auto connection =
          transport::shm::MakeShmConnection(std::move(*socket), endpoint(), options_.limits);
      ARROW_RETURN_NOT_OK(RecordFirst(*connection, process, record, deadline));
      auto set_up = connection->Setup(transport::shm::DefaultArenaSizes(), deadline);
      if (!set_up.ok()) return arrow::Status::IOError(process.Describe(), ": ", set_up.message());
      Record(process.pid(), std::move(record));
      return connection;
    }
    auto connection =
        transport::uds::MakeUdsConnection(std::move(*socket), endpoint(), options_.limits);
    ARROW_RETURN_NOT_OK(RecordFirst(*connection, process, record, deadline));
    Record(process.pid(), std::move(record));
    return connection;
  }

 private:
  static arrow::Status RecordFirst(transport::Connection& connection,
                                   transport::WorkerProcess& process,
                                   const std::shared_ptr<StartedWorker>& record,
                                   io::Deadline deadline) {
    auto first = connection.Receive(deadline);
    if (!first.ok()) {
      return arrow::Status::IOError("no first message from ", process.DescribeFailure());
    }
    if (first->control) record->first_message = *first->control;
    return arrow::Status::OK();
  }

  std::string path_;
  io::UniqueFd listener_;
  transport::EndpointOptions options_;
  bool shm_;
};

class KitUdsTransport : public transport::Transport {
 public:
  explicit KitUdsTransport(bool shm = false) : shm_(shm) {}

  arrow::Result<std::unique_ptr<transport::WorkerEndpoint>> Prepare(
      const transport::EndpointOptions& options) override {
    std::string path = options.private_directory + "/worker-" + options.worker_id + ".sock";
    ARROW_ASSIGN_OR_RAISE(io::UniqueFd listener, io::ListenUnixSocket(path));
    return std::make_unique<KitUdsEndpoint>(std::move(path), std::move(listener), options, shm_);
  }

 private:
  bool shm_;
};

// A registered transport's endpoint, recording the secret and endpoint of the
// worker once its handshake passed.
class RecordingEndpoint : public transport::WorkerEndpoint {
 public:
  RecordingEndpoint(std::string transport, std::string worker_id,
                    std::unique_ptr<transport::WorkerEndpoint> inner)
      : transport_(std::move(transport)),
        worker_id_(std::move(worker_id)),
        inner_(std::move(inner)) {}

  std::string endpoint() const override { return inner_->endpoint(); }
  std::vector<std::string> worker_arguments() const override { return inner_->worker_arguments(); }
  transport::Readiness readiness() const override { return inner_->readiness(); }
  std::string last_failure() const override { return inner_->last_failure(); }

  arrow::Result<std::unique_ptr<transport::Connection>> Accept(transport::WorkerProcess& process,
                                                               const std::string& secret,
                                                               io::Deadline step,
                                                               io::Deadline deadline) override {
    ARROW_ASSIGN_OR_RAISE(auto connection, inner_->Accept(process, secret, step, deadline));
    if (connection != nullptr) {
      auto record = std::make_shared<StartedWorker>();
      record->transport = transport_;
      record->endpoint = endpoint();
      record->worker_id = worker_id_;
      record->secret = secret;
      Record(process.pid(), std::move(record));
    }
    return connection;
  }

 private:
  std::string transport_;
  std::string worker_id_;
  std::unique_ptr<transport::WorkerEndpoint> inner_;
};

class RecordingTransport : public transport::Transport {
 public:
  RecordingTransport(std::string name, std::shared_ptr<transport::Transport> inner)
      : name_(std::move(name)), inner_(std::move(inner)) {}

  arrow::Result<std::unique_ptr<transport::WorkerEndpoint>> Prepare(
      const transport::EndpointOptions& options) override {
    ARROW_ASSIGN_OR_RAISE(auto endpoint, inner_->Prepare(options));
    return std::make_unique<RecordingEndpoint>(name_, options.worker_id, std::move(endpoint));
  }

 private:
  std::string name_;
  std::shared_ptr<transport::Transport> inner_;
};

arrow::Status RegisterKitTransports() {
  ARROW_RETURN_NOT_OK(
      transport::RegisterTransport({"conformance-uds"}, std::make_shared<KitUdsTransport>()));
  ARROW_RETURN_NOT_OK(
      transport::RegisterTransport({"conformance-shm"}, std::make_shared<KitUdsTransport>(true)));
  // Every other transport the registry offers is tested through a recording wrapper.
  for (const auto& offered : transport::OfferedTransports()) {
    const std::string& scheme = offered.names.front();
    if (scheme == "unix" || scheme == "shm") continue;
    ARROW_ASSIGN_OR_RAISE(auto inner, transport::FindTransport(scheme));
    ARROW_RETURN_NOT_OK(transport::RegisterTransport(
        {"conformance-" + scheme}, std::make_shared<RecordingTransport>(scheme, inner)));
  }
  return arrow::Status::OK();
}

}  // namespace

arrow::Result<std::string> KitTransport(const std::string& transport) {
  static const arrow::Status registered = RegisterKitTransports();
  ARROW_RETURN_NOT_OK(registered);
  ARROW_ASSIGN_OR_RAISE(auto offered, transport::FindOfferedTransport(transport));
  const std::string& scheme = offered.names.front();
  return "conformance-" + (scheme == "unix" ? std::string("uds") : scheme);
}

std::shared_ptr<StartedWorker> FindStartedWorker(pid_t pid) {
  std::lock_guard<std::mutex> lock(records_mutex);
  auto found = records.find(pid);
  return found == records.end() ? nullptr : found->second;
}

void ForgetStartedWorker(pid_t pid) {
  std::lock_guard<std::mutex> lock(records_mutex);
  records.erase(pid);
}

}  // namespace quiver::conformance
