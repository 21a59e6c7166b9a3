#include "quiver/worker/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "quiver/testing/status_matchers.h"

namespace quiver::worker {
namespace {

using std::chrono::milliseconds;

TEST(ChildProcess, CapturesOutputAndExitStatus) {
  ASSERT_OK_AND_ASSIGN(
      auto child, ChildProcess::Spawn({"sh", "-c", "echo out; echo err >&2; exit 3"}, {}, 4096));
  auto status = child->WaitFor(milliseconds(5000));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->ToString(), "exited with status 3");
  // The output thread may still be draining the pipe.
  for (int i = 0; i < 100 && child->log().LastLines(5).find("err") == std::string::npos; ++i) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_NE(child->log().LastLines(5).find("out"), std::string::npos);
  EXPECT_NE(child->log().LastLines(5).find("err"), std::string::npos);
}

TEST(ChildProcess, PassesTheEnvironment) {
  ASSERT_OK_AND_ASSIGN(auto child, ChildProcess::Spawn({"sh", "-c", "exit $QUIVER_TEST_CODE"},
                                                       {{"QUIVER_TEST_CODE", "7"}}, 4096));
  auto status = child->WaitFor(milliseconds(5000));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->code, 7);
}

// An engine embedded in a process whose stdin is closed gets its pipes as low
// descriptors; the child must still see the descriptor it is given (as 3),
// its stdout, and /dev/null as stdin.
TEST(ChildProcess, GivesTheInheritedDescriptorEvenWhenTheEngineHasNoStdin) {
  const int saved_stdin = ::dup(0);
  ASSERT_GE(saved_stdin, 0);
  ::close(0);
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  EXPECT_EQ(fds[0], 0) << "the test needs the pipe's read end to be descriptor 0";
  const std::string secret = "the-secret-word";
  ASSERT_EQ(::write(fds[1], secret.data(), secret.size()), static_cast<ssize_t>(secret.size()));
  ::close(fds[1]);
  auto child = ChildProcess::Spawn(
      {"sh", "-c", "cat <&3; echo; wc -c </dev/stdin | tr -d ' '; echo done"}, {}, 4096, fds[0]);
  ::dup2(saved_stdin, 0);  // the read end was 0: this closes it here and restores stdin
  ::close(saved_stdin);
  ASSERT_OK(child.status());
  auto status = (*child)->WaitFor(milliseconds(5000));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->code, 0);
  for (int i = 0; i < 100 && (*child)->log().LastLines(5).find("done") == std::string::npos; ++i) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  const std::string output = (*child)->log().LastLines(5);
  // The log indents each line: the secret from descriptor 3, then 0 bytes read from stdin.
  EXPECT_NE(output.find(secret + "\n  0\n  done"), std::string::npos) << output;
}

TEST(ChildProcess, MissingProgramIsAClearError) {
  auto child = ChildProcess::Spawn({"/nonexistent/quiver-worker"}, {}, 4096);
  ASSERT_FALSE(child.ok());
  EXPECT_NE(
      child.status().message().find("cannot start worker command '/nonexistent/quiver-worker'"),
      std::string::npos)
      << child.status().ToString();
}

TEST(ChildProcess, TerminateEscalatesToSigkill) {
  // The child ignores SIGTERM, so only SIGKILL ends it.
  ASSERT_OK_AND_ASSIGN(
      auto child,
      ChildProcess::Spawn({"sh", "-c", "trap '' TERM; echo ready; sleep 30"}, {}, 4096));
  for (int i = 0; i < 200 && child->log().LastLines(1).empty(); ++i) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  const ExitStatus status = child->Terminate(milliseconds(100));
  EXPECT_TRUE(status.signaled);
  EXPECT_EQ(status.code, SIGKILL);
  EXPECT_EQ(status.ToString(), "was killed by signal 9 (SIGKILL)");
}

TEST(ChildProcess, DestructorStopsAndReapsTheChild) {
  pid_t pid = 0;
  {
    ASSERT_OK_AND_ASSIGN(auto child, ChildProcess::Spawn({"sleep", "30"}, {}, 4096));
    pid = child->pid();
  }
  EXPECT_NE(::kill(pid, 0), 0);  // gone and reaped: no such process
}

}  // namespace
}  // namespace quiver::worker
