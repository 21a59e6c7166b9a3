#pragma once

// The kit reaches the worker under test as the engine does (WorkerDispatcher,
// the registered transports), through thin wrappers registered under their own
// names. They record what the kit checks later and an engine hides: the Hello
// a uds worker sent, the secret and endpoint a worker was given, and a second
// descriptor of the uds socket to write broken frames with.

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>

#include <arrow/result.h>

#include "quiver/io/unique_fd.h"
#include "quiver/v1/quiver.pb.h"

namespace quiver::conformance {

/// What the kit learnt while a worker started.
struct StartedWorker {
  /// The transport under test: "uds", "shm", "grpc+unix" or "grpc+tcp".
  std::string transport;
  /// The endpoint given with --connection.
  std::string endpoint;
  /// The id given with --id.
  std::string worker_id;
  /// The secret given in QUIVER_WORKER_SECRET.
  std::string secret;
  /// uds and shm: the worker's first message, whatever it was.
  std::optional<v1::WorkerMessage> first_message;
  /// uds and shm: the connection's socket again (dup), for bytes that are not frames.
  io::UniqueFd raw_socket;
};

/// Registers the kit's wrappers of the transports the registry offers once per
/// process and returns the name to put in WorkerSpec::transport for
/// `transport` (any name of an offered transport: "uds", "shm", "grpc", ...).
arrow::Result<std::string> KitTransport(const std::string& transport);

/// Returns what was recorded while the worker with `pid` started, or null.
std::shared_ptr<StartedWorker> FindStartedWorker(pid_t pid);

/// Forgets the record of `pid` (the worker was stopped).
void ForgetStartedWorker(pid_t pid);

}  // namespace quiver::conformance
