#include "quiver/worker/child_process.h"

#include <signal.h>

#include <string>

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
