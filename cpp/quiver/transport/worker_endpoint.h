#pragma once

// How the engine reaches a worker over one transport: the endpoint of a worker
// it starts (WorkerEndpoint) and the connection to a worker already running
// elsewhere (Transport::ConnectRemote). The dispatcher finds a Transport in the
// registry (registry.h) by name and speaks only these interfaces.

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <arrow/result.h>

#include "quiver/io/deadline.h"
#include "quiver/protocol/frame_codec.h"
#include "quiver/transport/connection.h"

namespace quiver::transport {

/// What a transport sees of the worker process the engine started for it.
class WorkerProcess {
 public:
  virtual ~WorkerProcess() = default;

  /// Returns the process id, to check that an endpoint is served by this process.
  virtual pid_t pid() const = 0;

  /// Returns "worker ID (pid N)", for messages.
  virtual std::string Describe() const = 0;

  /// Explains why the worker stopped answering: waits briefly for it to exit,
  /// then gives its exit status or signal and the last lines of its output.
  virtual std::string DescribeFailure() = 0;
};

/// How messages name what a starting worker does to become reachable.
struct Readiness {
  /// e.g. "connect" or "serve grpc+unix:/tmp/.../worker-1.sock" ("did not ... within").
  std::string present;
  /// e.g. "connected" or "served grpc+unix:/..." ("exited ... before it ...").
  std::string past;
};

/// \brief One worker's end of a transport, made before the worker starts.
///
/// The dispatcher starts the worker with `endpoint()` and `worker_arguments()`,
/// then calls Accept until it returns a connection, the worker exits, or the
/// start timeout passes.
class WorkerEndpoint {
 public:
  virtual ~WorkerEndpoint() = default;

  /// Returns the endpoint the worker is given with --connection ("unix:/...").
  virtual std::string endpoint() const = 0;

  /// Returns arguments added to the worker command before --id (e.g. the
  /// worker-side transport: {"--transport", "grpc"}).
  virtual std::vector<std::string> worker_arguments() const = 0;

  /// Returns variables added to the worker's environment (e.g. the shm
  /// endpoint the engine offers beside a unix: one, docs/protocol.md section 10).
  virtual std::map<std::string, std::string> worker_environment() const { return {}; }

  /// Returns how messages name what the worker does to become reachable.
  virtual Readiness readiness() const = 0;

  /// Tries once to reach the worker, waiting about until `step`, and runs the
  /// transport's handshake (the worker proves `secret`; it has until `deadline`
  /// to do so). Returns null when the worker is not reachable yet; an error when
  /// it was reached but refused (wrong secret, protocol version, another process).
  virtual arrow::Result<std::unique_ptr<Connection>> Accept(WorkerProcess& process,
                                                            const std::string& secret,
                                                            io::Deadline step,
                                                            io::Deadline deadline) = 0;

  /// Returns why the last Accept did not reach the worker, for the message when
  /// the start times out; empty when there is nothing to add.
  virtual std::string last_failure() const { return {}; }
};

/// Where the dispatcher prepares a worker's endpoint.
struct EndpointOptions {
  /// The worker's id ("3"), unique within the dispatcher.
  std::string worker_id;
  /// A directory private to this engine (mode 0700) for socket files.
  std::string private_directory;
  /// Largest messages accepted from the worker.
  protocol::FramingLimits limits;
  /// PEM root certificates file the engine trusts (TLS transports); empty: plaintext.
  std::string tls_root_certificates_file;
};

/// A worker that is already running, reached by endpoint.
struct RemoteEndpoint {
  /// e.g. "grpc+tcp:HOST:PORT"; its scheme chose the transport.
  std::string endpoint;
  /// The secret the worker was started with.
  std::string secret;
  /// PEM root certificates file for TLS; empty for plaintext.
  std::string tls_root_certificates_file;
};

/// \brief A transport as the registry knows it. Implementations are stateless
/// or thread-safe: one instance serves every dispatcher of the process.
class Transport {
 public:
  virtual ~Transport() = default;

  /// Prepares the endpoint of a worker the engine is about to start (e.g.
  /// listens on a socket in the private directory).
  virtual arrow::Result<std::unique_ptr<WorkerEndpoint>> Prepare(
      const EndpointOptions& options) = 0;

  /// Connects to a running worker and checks that it answers and accepts the
  /// secret, waiting at most `timeout`. The default says the transport cannot.
  virtual arrow::Result<std::unique_ptr<Connection>> ConnectRemote(
      const RemoteEndpoint& remote, std::chrono::milliseconds timeout);
};

}  // namespace quiver::transport
