#include "quiver/sdk/hello.h"

#include <unistd.h>

#include <arrow/config.h>

#include "quiver/protocol/version.h"

namespace quiver::sdk {

v1::Hello MakeHello(const std::string& worker_id, const std::string& secret) {
  v1::Hello hello;
  hello.set_protocol_version(protocol::kProtocolVersion);
  hello.set_worker_id(worker_id);
  hello.set_secret(secret);
  hello.set_runtime("c++ quiver-sdk arrow " + arrow::GetBuildInfo().version_string);
  hello.set_pid(static_cast<uint32_t>(::getpid()));
  return hello;
}

}  // namespace quiver::sdk
