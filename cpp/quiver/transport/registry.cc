#include "quiver/transport/registry.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <utility>

namespace quiver::transport {
namespace {

struct Registry {
  std::mutex mutex;
  std::map<std::string, std::shared_ptr<Transport>, std::less<>> transports;
  std::map<std::string, OfferedTransport> offered;  // by first name
};

// Built on first use: registrations run during static initialization, in any order.
Registry& TheRegistry() {
  static Registry* registry = new Registry();  // never destroyed: used until exit
  return *registry;
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string text;
  for (const auto& name : names) text += (text.empty() ? "" : ", ") + name;
  return text.empty() ? "none" : text;
}

}  // namespace

arrow::Result<std::unique_ptr<Connection>> Transport::ConnectRemote(const RemoteEndpoint& remote,
                                                                    std::chrono::milliseconds) {
  return arrow::Status::NotImplemented("the transport of ", remote.endpoint,
                                       " cannot reach a worker it did not start");
}

arrow::Status RegisterTransport(const std::vector<std::string>& names,
                                std::shared_ptr<Transport> transport, std::string description) {
  if (names.empty() || transport == nullptr) {
    return arrow::Status::Invalid("a transport needs a name and an implementation");
  }
  Registry& registry = TheRegistry();
  std::lock_guard<std::mutex> lock(registry.mutex);
  for (const auto& name : names) {
    if (registry.transports.count(name) > 0) {
      return arrow::Status::AlreadyExists("a transport named '", name, "' is already registered");
    }
  }
  for (const auto& name : names) registry.transports.emplace(name, transport);
  if (!description.empty()) {
    registry.offered[names.front()] = OfferedTransport{names, std::move(description)};
  }
  return arrow::Status::OK();
}

arrow::Result<std::shared_ptr<Transport>> FindTransport(std::string_view name) {
  {
    Registry& registry = TheRegistry();
    std::lock_guard<std::mutex> lock(registry.mutex);
    auto found = registry.transports.find(name);
    if (found != registry.transports.end()) return found->second;
  }
  return arrow::Status::Invalid("unknown transport '", name, "' (", JoinNames(TransportNames()),
                                ")");
}

std::vector<std::string> TransportNames() {
  Registry& registry = TheRegistry();
  std::lock_guard<std::mutex> lock(registry.mutex);
  std::vector<std::string> names;
  for (const auto& entry : registry.transports) names.push_back(entry.first);
  return names;
}

std::vector<OfferedTransport> OfferedTransports() {
  Registry& registry = TheRegistry();
  std::lock_guard<std::mutex> lock(registry.mutex);
  std::vector<OfferedTransport> offered;
  for (const auto& entry : registry.offered) offered.push_back(entry.second);
  return offered;
}

std::vector<std::string> OfferedTransportNames() {
  std::vector<std::string> names;
  for (const auto& offered : OfferedTransports()) {
    names.insert(names.end(), offered.names.begin(), offered.names.end());
  }
  std::sort(names.begin(), names.end());
  return names;
}

arrow::Result<OfferedTransport> FindOfferedTransport(std::string_view name) {
  for (auto& offered : OfferedTransports()) {
    for (const auto& each : offered.names) {
      if (each == name) return std::move(offered);
    }
  }
  return arrow::Status::Invalid("unknown transport '", name, "'; the transports are ",
                                JoinNames(OfferedTransportNames()));
}

std::string_view EndpointScheme(std::string_view endpoint) {
  return endpoint.substr(0, endpoint.find(':'));
}

TransportRegistration::TransportRegistration(const std::vector<std::string>& names,
                                             std::shared_ptr<Transport> transport,
                                             std::string description) {
  arrow::Status status = RegisterTransport(names, std::move(transport), std::move(description));
  if (!status.ok()) {
    std::fprintf(stderr, "quiver: cannot register transport: %s\n", status.ToString().c_str());
    std::abort();
  }
}

}  // namespace quiver::transport
