#pragma once

// The transports of this process, by name: the one list of them. A transport
// registers under its endpoint scheme and any aliases, and with a one-line
// description when users may choose it; the dispatcher looks up
// WorkerSpec::transport, and a remote worker's endpoint scheme, here, and
// `quiver run --transport`, quiver.Session and the conformance kit offer and
// check the described ones (OfferedTransports).
//
// Built in (each its own target, see the folders):
//   unix, alias uds   transport/uds   quiver.v1 framing over a Unix socket the
//                                     engine listens on (quiver_transport_uds)
//   shm               transport/shm   uds, with batches and results in shared
//                                     memory (quiver_transport_shm)
//   auto              transport/shm   the default: offers shm beside uds, the
//                                     worker takes the one it speaks
//   grpc+unix, grpc   transport/grpc  the UdfWorker gRPC service on a Unix socket
//   grpc+tcp          transport/grpc  ... on a loopback TCP port, or a remote
//                                     worker's HOST:PORT (quiver_transport_grpc)
//   spark             transport/spark Spark's UdfWorker protocol on a Unix socket,
//                                     one Execute stream per UDF (quiver_transport_spark)
//
// A transport's folder registers it with a TransportRegistration object at
// namespace scope; an engine that wants the transport links its target whole
// (CMake: $<LINK_LIBRARY:WHOLE_ARCHIVE,quiver_transport_NAME>) so that the
// object is not dropped by the linker. A test or an engine may also call
// RegisterTransport itself.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>

#include "quiver/transport/worker_endpoint.h"

namespace quiver::transport {

/// The transport WorkerSpec uses unless told otherwise: shm for a worker that
/// speaks it, uds for any other (transport/shm/shm_offer.cc).
inline constexpr char kDefaultTransport[] = "auto";

/// Registers `transport` under every name in `names` (the endpoint scheme
/// first). A non-empty `description` (one line, for users) offers it to users
/// under those names; without one it is for the engine's own use (a runtime's
/// scheme, the conformance kit's wrappers). Fails, registering nothing, when a
/// name is already taken.
arrow::Status RegisterTransport(const std::vector<std::string>& names,
                                std::shared_ptr<Transport> transport, std::string description = "");

/// Returns the transport registered under `name`; the error lists the names there are.
arrow::Result<std::shared_ptr<Transport>> FindTransport(std::string_view name);

/// Returns every registered name, sorted.
std::vector<std::string> TransportNames();

/// A transport users may choose, under any of its names.
struct OfferedTransport {
  std::vector<std::string> names;  // as registered: the endpoint scheme first
  std::string description;
};

/// Returns the transports registered with a description, by their first name.
std::vector<OfferedTransport> OfferedTransports();

/// Returns every name of the offered transports, sorted.
std::vector<std::string> OfferedTransportNames();

/// Returns the offered transport `name` is a name of, or an error that lists
/// the offered names.
arrow::Result<OfferedTransport> FindOfferedTransport(std::string_view name);

/// Returns the scheme of `endpoint`: the text before its first ':' ("grpc+tcp"
/// for "grpc+tcp:127.0.0.1:5000"), or the whole text when it has none.
std::string_view EndpointScheme(std::string_view endpoint);

/// Registers a transport when constructed; for namespace-scope objects in a
/// transport's folder. A failure (a name taken twice) aborts the process with
/// the reason, since it is a build mistake.
class TransportRegistration {
 public:
  TransportRegistration(const std::vector<std::string>& names, std::shared_ptr<Transport> transport,
                        std::string description = "");
};

}  // namespace quiver::transport
