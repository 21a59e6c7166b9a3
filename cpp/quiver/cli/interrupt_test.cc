#include "quiver/cli/interrupt.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace quiver::cli {
namespace {

namespace fs = std::filesystem;

// Runs in a forked child: interrupts itself while "blocked" and lets the watchdog act.
void InterruptAndHang(const std::string& path) {
  InstallInterruptHandlers();
  InterruptWatchdog watchdog(std::chrono::milliseconds(100));
  watchdog.SetCleanupPath(path);
  ::raise(SIGINT);
  std::this_thread::sleep_for(std::chrono::seconds(10));  // never returns normally
}

TEST(InterruptDeathTest, WatchdogRemovesTheFileAndExits130) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // The threadsafe style re-runs this test in a new process: pass it the path
  // through the environment so that both processes use the same file.
  const char* const kPathVariable = "QUIVER_INTERRUPT_TEST_FILE";
  if (std::getenv(kPathVariable) == nullptr) {
    const auto name = "quiver_interrupt_test_" + std::to_string(::getpid());
    ::setenv(kPathVariable, (fs::temp_directory_path() / name).c_str(), 1);
  }
  const fs::path path = std::getenv(kPathVariable);
  std::ofstream(path) << "partial";
  EXPECT_EXIT(InterruptAndHang(path.string()), ::testing::ExitedWithCode(130), "interrupted");
  EXPECT_FALSE(fs::exists(path));
  fs::remove(path);
}

TEST(Interrupt, RecordsNoSignalUntilOneArrives) {
  EXPECT_EQ(InterruptSignal(), 0);
  InterruptWatchdog watchdog(std::chrono::milliseconds(100));  // starts and stops cleanly
}

}  // namespace
}  // namespace quiver::cli
