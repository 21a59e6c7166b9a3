#include "quiver/worker/worker_launcher.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "quiver/io/unique_fd.h"
#include "quiver/sandbox/landlock_rules.h"
#include "quiver/sandbox/sandbox_policy.h"
#include "quiver/testing/status_matchers.h"
#include "quiver/worker/fork_server.h"
#include "quiver/worker/worker_dispatcher.h"

namespace quiver::worker {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

// A fresh directory under /tmp (short: socket paths hold at most 107 bytes)
// with a stand-in "python" that exits at once: what fork/exec starts when the
// fork server is not used, and what would run a server that is started.
class LauncherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = "/tmp/qwl-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    directory_ = pattern;
    python_ = directory_ + "/python";
    std::ofstream(python_) << "#!/bin/sh\nexit 0\n";
    fs::permissions(python_, fs::perms::owner_all);
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(directory_, ignored);
  }

  WorkerSpec ForkServerSpecIn(const std::string& directory) const {
    WorkerSpec spec;
    spec.command = PythonWorkerCommand(python_);
    spec.launcher = LauncherKind::kForkServer;
    spec.fork_server.python = python_;
    spec.fork_server.directory = directory;
    return spec;
  }

  // Launches the worker command twice; returns what the engine wrote to stderr.
  std::string LaunchTwice(const WorkerSpec& spec) {
    auto launcher = MakeWorkerLauncher(spec);
    EXPECT_TRUE(launcher.ok()) << launcher.status().ToString();
    ::testing::internal::CaptureStderr();
    for (int i = 0; i < 2; ++i) {
      auto process = (*launcher)->Launch(spec.command, environment_, -1);
      EXPECT_TRUE(process.ok()) << process.status().ToString();
      if (process.ok()) {
        EXPECT_FALSE((*process)->adopted());  // fork/exec'd: the server did not fork it
        (*process)->WaitFor(milliseconds(5000));
      }
    }
    return ::testing::internal::GetCapturedStderr();
  }

  std::string directory_;
  std::string python_;
  std::map<std::string, std::string> environment_ = {{"QUIVER_TEST_LAUNCHER", "1"}};
};

// A fork server that answers every request with `answer` (a line), as a server
// that runs but cannot fork the worker does.
class AnsweringServer {
 public:
  AnsweringServer(const std::string& socket_path, std::string answer, int connections)
      : answer_(std::move(answer)) {
    listener_ = io::UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, socket_path.data(), socket_path.size());
    bound_ = ::bind(listener_.get(), reinterpret_cast<const sockaddr*>(&address),
                    sizeof(address)) == 0 &&
             ::listen(listener_.get(), 4) == 0;
    thread_ = std::thread([this, connections] {
      for (int i = 0; i < connections; ++i) {
        io::UniqueFd connection(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!connection.valid()) return;
        char request[65536];
        if (::read(connection.get(), request, sizeof(request)) <= 0) return;
        if (::write(connection.get(), answer_.data(), answer_.size()) < 0) return;
      }
    });
  }
  ~AnsweringServer() { thread_.join(); }
  bool bound() const { return bound_; }

 private:
  std::string answer_;
  io::UniqueFd listener_;
  bool bound_ = false;
  std::thread thread_;
};

int Occurrences(const std::string& text, const std::string& part) {
  int count = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) {
    ++count;
  }
  return count;
}

TEST_F(LauncherTest, ForkExecIsTheDefaultLauncher) {
  WorkerSpec spec;
  spec.command = {"/bin/sh", "-c", "echo started"};
  ASSERT_OK_AND_ASSIGN(auto launcher, MakeWorkerLauncher(spec));
  ASSERT_OK_AND_ASSIGN(auto process, launcher->Launch(spec.command, {}, -1));
  EXPECT_FALSE(process->adopted());
  const auto status = process->WaitFor(milliseconds(5000));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->code, 0);
  // The output thread may still be draining the pipe after the exit.
  for (int i = 0; i < 500 && process->log().LastLines(5).find("started") == std::string::npos;
       ++i) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_NE(process->log().LastLines(5).find("started"), std::string::npos);
}

TEST_F(LauncherTest, TheForkServerIsRefusedForAnotherProgram) {
  WorkerSpec spec = ForkServerSpecIn(directory_);
  spec.command = {"/bin/echo", "-m", "quiver.worker"};
  auto launcher = MakeWorkerLauncher(spec);
  ASSERT_FALSE(launcher.ok());
  EXPECT_NE(launcher.status().message().find("kForkExec"), std::string::npos)
      << launcher.status().ToString();
}

TEST_F(LauncherTest, ASpecWithoutAnInterpreterStartsByForkExec) {
  WorkerSpec spec = ForkServerSpecIn(directory_);
  spec.fork_server.python.clear();
  EXPECT_EQ(LaunchTwice(spec), "");
  for (const auto& entry : fs::directory_iterator(directory_)) {
    EXPECT_NE(entry.path().extension(), ".log") << "a fork server was started";
  }
}

TEST_F(LauncherTest, ASpecAskingForTheSandboxNeverUsesTheForkServer) {
  if (sandbox::LandlockAbi() < sandbox::kMinimumLandlockAbi) {
    GTEST_SKIP() << "the sandbox needs Landlock ABI " << sandbox::kMinimumLandlockAbi;
  }
  WorkerSpec spec = ForkServerSpecIn(directory_);
  spec.environment[sandbox::kSandboxVariable] = "1";
  environment_[sandbox::kSandboxVariable] = "1";
  EXPECT_EQ(LaunchTwice(spec), "");  // fork/exec'd, sandboxed, silently
  for (const auto& entry : fs::directory_iterator(directory_)) {
    EXPECT_NE(entry.path().extension(), ".log") << "a fork server was started";
  }
}

TEST_F(LauncherTest, NoServerRunningFallsBackSilentlyAndStartsOne) {
  const std::string servers = directory_ + "/servers";
  const WorkerSpec spec = ForkServerSpecIn(servers);
  EXPECT_EQ(LaunchTwice(spec), "");
  // The server was started for later runs: its log sits beside its socket.
  bool started = false;
  for (const auto& entry : fs::directory_iterator(servers)) {
    started = started || entry.path().extension() == ".log";
  }
  EXPECT_TRUE(started);
}

TEST_F(LauncherTest, ARunningServerThatFailsIsSaidOnce) {
  const WorkerSpec spec = ForkServerSpecIn(directory_);
  const std::string socket = ForkServerSocket(directory_, python_, MergedEnvironment(environment_));
  AnsweringServer server(socket, "error something broke\n", 2);
  ASSERT_TRUE(server.bound());
  const std::string errors = LaunchTwice(spec);
  EXPECT_EQ(Occurrences(errors,
                        "quiver: starting workers without the fork server: the fork "
                        "server refused the worker: error something broke"),
            1)
      << errors;
}

TEST_F(LauncherTest, ARestartingServerIsNotSaid) {
  const WorkerSpec spec = ForkServerSpecIn(directory_);
  const std::string socket = ForkServerSocket(directory_, python_, MergedEnvironment(environment_));
  AnsweringServer server(socket, "error stale: x.py changed since the server started\n", 2);
  ASSERT_TRUE(server.bound());
  EXPECT_EQ(LaunchTwice(spec), "");
}

TEST_F(LauncherTest, ASocketPathTooLongIsSaidOnceWithItsLengthAndTheRemedy) {
  const std::string deep = directory_ + "/" + std::string(90, 'd');
  const std::string errors = LaunchTwice(ForkServerSpecIn(deep));
  const std::string socket = ForkServerSocket(deep, python_, MergedEnvironment(environment_));
  EXPECT_EQ(Occurrences(errors, "starting workers without the fork server"), 1) << errors;
  EXPECT_NE(errors.find(socket + " is " + std::to_string(socket.size()) + " bytes, over the 107"),
            std::string::npos)
      << errors;
  EXPECT_NE(errors.find("set QUIVER_FORKSERVER_DIR to a directory of at most 82 bytes"),
            std::string::npos)
      << errors;
}

TEST_F(LauncherTest, TheForkServersFailuresAreTyped) {
  const WorkerSpec spec = ForkServerSpecIn(directory_ + "/servers");
  auto absent = SpawnThroughForkServer(spec.fork_server, {}, environment_, 1024, -1);
  ASSERT_FALSE(absent.ok());
  EXPECT_EQ(ForkServerFailureOf(absent.status()), ForkServerFailure::kNotRunning);
  auto too_long =
      SpawnThroughForkServer(ForkServerSpecIn(directory_ + "/" + std::string(90, 'd')).fork_server,
                             {}, environment_, 1024, -1);
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(ForkServerFailureOf(too_long.status()), ForkServerFailure::kFailed);
  EXPECT_EQ(ForkServerFailureOf(arrow::Status::IOError("other")), ForkServerFailure::kFailed);
}

}  // namespace
}  // namespace quiver::worker
