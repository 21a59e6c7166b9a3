#pragma once

// The entry point of a compiled quiver worker:
//
//   int main(int argc, char** argv) {
//     quiver::sdk::Registry registry;
//     registry.Scalar("identity", {quiver::sdk::AnyType()}, quiver::sdk::SameTypeAs(0),
//                     [](const quiver::sdk::Arrays& args) { return args[0]; });
//     return quiver::sdk::Serve(argc, argv, registry);
//   }

#include "quiver/sdk/registry.h"

namespace quiver::sdk {

/// Runs the worker the engine started: parses the command line, takes the secret
/// out of QUIVER_WORKER_SECRET (removing it from the environment before any UDF
/// runs), and serves executions over the transport the command line names until
/// the engine is done with the worker. Returns the process exit status (0 after
/// Shutdown or SIGTERM, 1 when the connection broke, 2 on a usage error).
int Serve(int argc, char** argv, const Registry& registry);

}  // namespace quiver::sdk
