#include "quiver/worker/fork_server.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "quiver/testing/python.h"
#include "quiver/testing/status_matchers.h"
#include "quiver/worker/worker.h"
#include "quiver/worker/worker_dispatcher.h"

namespace quiver::worker {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

// A fresh directory under /tmp (short: socket paths hold at most 107 bytes), removed after.
class TempDirectory {
 public:
  TempDirectory() {
    std::string pattern = "/tmp/qfs-test-XXXXXX";
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDirectory() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(ForkServerDirectory, CreatesAMissingDirectoryPrivate) {
  TempDirectory temp;
  const std::string directory = temp.path() + "/quiver";
  ASSERT_OK_AND_ASSIGN(auto made, ForkServerDirectory(directory));
  EXPECT_EQ(made, directory);
  struct stat info {};
  ASSERT_EQ(::stat(directory.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0700u);
}

TEST(ForkServerDirectory, RefusesADirectoryOthersCanReach) {
  TempDirectory temp;
  ASSERT_EQ(::chmod(temp.path().c_str(), 0755), 0);
  auto refused = ForkServerDirectory(temp.path());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("must be 0700"), std::string::npos)
      << refused.status().ToString();
}

TEST(ForkServerDirectory, RefusesASymlink) {
  TempDirectory temp;
  const std::string link = temp.path() + "/link";
  ASSERT_EQ(::symlink(temp.path().c_str(), link.c_str()), 0);
  auto refused = ForkServerDirectory(link);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("not a directory"), std::string::npos);
}

TEST(ForkServerDirectory, RefusesAnotherUsersDirectory) {
  if (::getuid() != 0) GTEST_SKIP() << "needs root to make a directory of another user";
  TempDirectory temp;
  ASSERT_EQ(::chown(temp.path().c_str(), 65534, 65534), 0);
  auto refused = ForkServerDirectory(temp.path());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("belongs to uid 65534"), std::string::npos);
}

TEST(ForkServerSocket, DiffersByInterpreterAndImportPath) {
  const std::string base = ForkServerSocket("/d", "/usr/bin/python3", {"HOME=/root"});
  EXPECT_EQ(base, ForkServerSocket("/d", "/usr/bin/python3", {"HOME=/elsewhere"}));
  EXPECT_NE(base, ForkServerSocket("/d", "/other/python3", {"HOME=/root"}));
  EXPECT_NE(base, ForkServerSocket("/d", "/usr/bin/python3", {"PYTHONPATH=/x"}));
  EXPECT_EQ(base.rfind("/d/fs-", 0), 0u);
}

TEST(ForkServer, TheFirstWorkerIsExecedAndLaterOnesAreForkedByTheServer) {
  TempDirectory temp;
  WorkerSpec spec;
  const std::string python = quiver::testing::PythonForWorkers();
  spec.command = PythonWorkerCommand(python);
  spec.start_timeout = milliseconds(30000);
  spec.stop_grace = milliseconds(500);
  spec.reuse = false;
  spec.launcher = LauncherKind::kForkServer;
  spec.fork_server.python = python;
  spec.fork_server.directory = temp.path();
  spec.fork_server.idle_timeout_seconds = 20;
  ASSERT_OK_AND_ASSIGN(auto dispatcher, WorkerDispatcher::Make(spec));
  {
    ASSERT_OK_AND_ASSIGN(auto first, dispatcher->Acquire());
    EXPECT_FALSE(first->process().adopted());  // no server ran: fork/exec, and one starts
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  auto listening = [&] {
    for (const auto& entry : fs::directory_iterator(temp.path())) {
      if (entry.path().extension() == ".sock") return true;
    }
    return false;
  };
  while (!listening() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(50));
  }
  ASSERT_TRUE(listening()) << "the fork server never listened";
  ASSERT_OK_AND_ASSIGN(auto forked, dispatcher->Acquire());
  EXPECT_TRUE(forked->process().adopted());
  // The engine still stops it and learns how it ended, though it is not its child.
  const ExitStatus status = forked->process().Terminate(milliseconds(2000));
  EXPECT_TRUE(status.signaled || status.code == 0) << status.ToString();
}

}  // namespace
}  // namespace quiver::worker
