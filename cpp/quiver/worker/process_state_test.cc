#include "quiver/worker/process_state.h"

#include <chrono>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "quiver/testing/status_matchers.h"
#include "quiver/worker/child_process.h"

namespace quiver::worker {
namespace {

using std::chrono::milliseconds;

TEST(DescribeProcessState, SaysASleepingProcessSleepsAndUsedLittleCpu) {
  ASSERT_OK_AND_ASSIGN(auto child, ChildProcess::Spawn({"sleep", "30"}, {}, 4096));
  std::this_thread::sleep_for(milliseconds(200));
  const std::string state = DescribeProcessState(child->pid());
  EXPECT_NE(state.find("it was sleeping"), std::string::npos) << state;
  EXPECT_NE(state.find("after 0.0"), std::string::npos) << state;
  child->Terminate(milliseconds(100));
}

TEST(DescribeProcessState, SaysABusyProcessRunsAndCountsItsCpu) {
  ASSERT_OK_AND_ASSIGN(auto child,
                       ChildProcess::Spawn({"sh", "-c", "while :; do :; done"}, {}, 4096));
  std::this_thread::sleep_for(milliseconds(1500));
  const std::string state = DescribeProcessState(child->pid());
  child->Terminate(milliseconds(100));
  // A spinning shell is running, or runnable but waiting for a core on a busy machine.
  EXPECT_EQ(state.find("it was sleeping (in"), std::string::npos) << state;
  EXPECT_EQ(state.find("after 0.00 s"), std::string::npos) << "no CPU counted: " << state;
}

TEST(DescribeProcessState, IsEmptyForAProcessThatIsGone) {
  ASSERT_OK_AND_ASSIGN(auto child, ChildProcess::Spawn({"true"}, {}, 4096));
  ASSERT_TRUE(child->WaitFor(milliseconds(5000)).has_value());
  EXPECT_EQ(DescribeProcessState(child->pid()), "");
}

}  // namespace
}  // namespace quiver::worker
