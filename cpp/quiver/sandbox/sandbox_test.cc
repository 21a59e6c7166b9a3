// The sandbox as a worker meets it: a forked child enters it and tries what a
// hostile UDF would; the parent reads the errno each attempt got.

#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>

#include <gtest/gtest.h>

#include "quiver/sandbox/sandbox_policy.h"

namespace quiver::sandbox {
namespace {

namespace fs = std::filesystem;

// Runs `attempt` in a sandboxed child; returns the errno it reports (0: allowed).
int ErrnoInSandbox(const std::map<std::string, std::string>& extra,
                   const std::function<int(const std::string& private_dir)>& attempt) {
  std::map<std::string, std::string> environment = extra;
  environment[kSandboxVariable] = "1";
  auto prepared = PreparedSandbox::Prepare({"/bin/true"}, &environment);
  EXPECT_TRUE(prepared.ok()) << prepared.status().ToString();
  if (!prepared.ok()) return -1;
  const std::string directory = (*prepared)->private_directory();
  const pid_t pid = ::fork();
  if (pid == 0) {
    if ((*prepared)->Enter() != 0) ::_exit(255);
    ::_exit(attempt(directory));
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int OpenErrno(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0600);
  if (fd < 0) return errno;
  ::close(fd);
  return 0;
}

class SandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!CheckSandboxSupported().ok()) GTEST_SKIP() << CheckSandboxSupported().ToString();
    outside_ = fs::temp_directory_path() / ("quiver-sandbox-test-" + std::to_string(::getpid()));
    fs::create_directories(outside_);
    std::ofstream(outside_ / "secret") << "key";
  }
  void TearDown() override { fs::remove_all(outside_); }
  fs::path outside_;
};

TEST_F(SandboxTest, RefusesNetworkSocketsButNotUnixOnes) {
  EXPECT_EQ(ErrnoInSandbox({},
                           [](const std::string&) {
                             const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
                             return fd < 0 ? errno : 0;
                           }),
            EACCES);
  EXPECT_EQ(ErrnoInSandbox({},
                           [](const std::string&) {
                             const int fd = ::socket(AF_INET6, SOCK_DGRAM, 0);
                             return fd < 0 ? errno : 0;
                           }),
            EACCES);
  EXPECT_EQ(ErrnoInSandbox({},
                           [](const std::string&) {
                             const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
                             return fd < 0 ? errno : 0;
                           }),
            0);
}

TEST_F(SandboxTest, ReadsOnlyGrantedFilesAndWritesOnlyItsPrivateDirectory) {
  const std::string secret = (outside_ / "secret").string();
  EXPECT_EQ(ErrnoInSandbox({}, [&](const std::string&) { return OpenErrno(secret, O_RDONLY); }),
            EACCES);
  EXPECT_EQ(ErrnoInSandbox({{kReadPathsVariable, outside_.string()}},
                           [&](const std::string&) { return OpenErrno(secret, O_RDONLY); }),
            0);
  EXPECT_EQ(ErrnoInSandbox({{kReadPathsVariable, outside_.string()}},
                           [&](const std::string&) { return OpenErrno(secret, O_WRONLY); }),
            EACCES);
  EXPECT_EQ(ErrnoInSandbox({},
                           [](const std::string& directory) {
                             return OpenErrno(directory + "/out", O_WRONLY | O_CREAT);
                           }),
            0);
  EXPECT_EQ(
      ErrnoInSandbox({}, [](const std::string&) { return OpenErrno("/usr/bin/env", O_RDONLY); }),
      0);
}

TEST_F(SandboxTest, RefusesNamespacesAndPtrace) {
  EXPECT_EQ(ErrnoInSandbox(
                {}, [](const std::string&) { return ::unshare(CLONE_NEWUSER) != 0 ? errno : 0; }),
            EPERM);
}

TEST_F(SandboxTest, ProcOfProcessesOutsideTheSandboxStaysPrivate) {
  // /proc is readable, but the entries ptrace guards (environ, mem) of a
  // process outside the sandbox are not: Landlock refuses ptrace access to it.
  const std::string parent = "/proc/" + std::to_string(::getpid());
  EXPECT_EQ(ErrnoInSandbox(
                {}, [&](const std::string&) { return OpenErrno(parent + "/environ", O_RDONLY); }),
            EACCES);
  EXPECT_EQ(ErrnoInSandbox(
                {}, [](const std::string&) { return OpenErrno("/proc/self/environ", O_RDONLY); }),
            0);
}

TEST_F(SandboxTest, RemovesThePrivateDirectoryWithTheSandbox) {
  std::map<std::string, std::string> environment{{kSandboxVariable, "1"}};
  auto prepared = PreparedSandbox::Prepare({"/bin/true"}, &environment);
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  const std::string directory = (*prepared)->private_directory();
  EXPECT_EQ(environment["TMPDIR"], directory);
  EXPECT_TRUE(fs::is_directory(directory));
  prepared->reset();
  EXPECT_FALSE(fs::exists(directory));
}

}  // namespace
}  // namespace quiver::sandbox
