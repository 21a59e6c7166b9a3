#include "quiver/sdk/command_line.h"

#include <gtest/gtest.h>

#include "quiver/sdk/grpc_endpoint.h"
#include "quiver/testing/status_matchers.h"

namespace quiver::sdk {
namespace {

TEST(CommandLine, ReadsTheFlagsTheEngineGives) {
  ASSERT_OK_AND_ASSIGN(auto options, ParseCommandLine({"--id", "w3", "--connection=unix:/tmp/s",
                                                       "--log-level", "debug"}));
  EXPECT_EQ(options.id, "w3");
  EXPECT_EQ(options.connection, "unix:/tmp/s");
  EXPECT_EQ(options.transport, "uds");
  EXPECT_EQ(options.log_level, LogLevel::kDebug);
  ASSERT_OK_AND_ASSIGN(options, ParseCommandLine({"--transport", "grpc", "--id", "w",
                                                  "--connection", "grpc+unix:/tmp/g"}));
  EXPECT_EQ(options.transport, "grpc");
}

TEST(CommandLine, TheSparkDialectServesGrpcOnAPathOrAPort) {
  ASSERT_OK_AND_ASSIGN(auto options, ParseCommandLine({"--dialect", "spark", "--id", "w1",
                                                       "--connection", "/tmp/q/w1.sock"}));
  EXPECT_EQ(options.dialect, "spark");
  EXPECT_EQ(options.transport, "grpc");
  EXPECT_EQ(options.connection, "/tmp/q/w1.sock");
  ASSERT_OK_AND_ASSIGN(options, ParseCommandLine({"--id", "w", "--connection=41235",
                                                  "--dialect=spark", "--transport", "grpc"}));
  EXPECT_EQ(options.connection, "41235");
  ASSERT_OK_AND_ASSIGN(options, ParseCommandLine({"--id", "w", "--connection", "unix:/s"}));
  EXPECT_EQ(options.dialect, "quiver");
  auto uds = ParseCommandLine(
      {"--dialect", "spark", "--transport", "uds", "--id", "w", "--connection", "/s"});
  ASSERT_FALSE(uds.ok());
  EXPECT_NE(uds.status().message().find("gRPC only"), std::string::npos);
  auto unknown = ParseCommandLine({"--dialect", "pyspark", "--id", "w", "--connection", "/s"});
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("pyspark"), std::string::npos);
}

TEST(CommandLine, RefusesWhatItCannotUse) {
  EXPECT_FALSE(ParseCommandLine({"--connection", "unix:/s"}).ok());  // no --id
  EXPECT_FALSE(ParseCommandLine({"--id", "w"}).ok());                // no --connection
  EXPECT_FALSE(ParseCommandLine({"--id", "w", "--connection", "unix:/s", "--bogus", "1"}).ok());
  EXPECT_FALSE(ParseCommandLine({"--id", "w", "--connection", "unix:/s", "--transport", "x"}).ok());
  EXPECT_FALSE(ParseCommandLine({"--id", "w", "--connection", "unix:/s", "--tls-cert", "c"}).ok());
  EXPECT_FALSE(ParseCommandLine({"--id", "w", "--connection"}).ok());
}

TEST(GrpcEndpoint, ReadsUnixAndTcpEndpoints) {
  ASSERT_OK_AND_ASSIGN(auto endpoint, ParseGrpcEndpoint("grpc+unix:///tmp/w.sock"));
  EXPECT_EQ(endpoint.address, "unix:/tmp/w.sock");
  ASSERT_OK_AND_ASSIGN(endpoint, ParseGrpcEndpoint("grpc+tcp::4567"));
  EXPECT_EQ(endpoint.address, "127.0.0.1:4567");
  EXPECT_TRUE(endpoint.local && endpoint.tcp);
  ASSERT_OK_AND_ASSIGN(endpoint, ParseGrpcEndpoint("grpc+tcp:[::1]:80"));
  EXPECT_EQ(endpoint.address, "[::1]:80");
  ASSERT_OK_AND_ASSIGN(endpoint, ParseGrpcEndpoint("grpc+tcp:10.0.0.1:80"));
  EXPECT_FALSE(endpoint.local);
  EXPECT_FALSE(ParseGrpcEndpoint("grpc+tcp:host").ok());
  EXPECT_FALSE(ParseGrpcEndpoint("unix:/tmp/s").ok());
}

}  // namespace
}  // namespace quiver::sdk
