#include "quiver/worker/process_state.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace quiver::worker {
namespace {

std::string ReadFirstLine(const std::string& path) {
  std::ifstream file(path);
  std::string line;
  std::getline(file, line);
  return line;
}

const char* StateName(char state) {
  switch (state) {
    case 'R':
      return "running";
    case 'S':
      return "sleeping";
    case 'D':
      return "waiting on the disk";
    case 'T':
    case 't':
      return "stopped";
    case 'Z':
      return "a zombie";
    default:
      return "in state ?";
  }
}

}  // namespace

std::string DescribeProcessState(pid_t pid) {
  const std::string directory = "/proc/" + std::to_string(pid);
  // /proc/PID/stat: "pid (comm) state ppid ... utime stime ..."; comm may hold
  // spaces and parentheses, so the fields are counted from the last ')'.
  const std::string stat = ReadFirstLine(directory + "/stat");
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return "";
  std::istringstream fields(stat.substr(close + 1));
  char state = '?';
  fields >> state;
  std::string skipped;
  for (int field = 4; field <= 13; ++field) fields >> skipped;  // ppid .. cmajflt
  long long user_ticks = 0;
  long long system_ticks = 0;
  fields >> user_ticks >> system_ticks;
  const long ticks_per_second = ::sysconf(_SC_CLK_TCK);
  const double cpu_seconds =
      ticks_per_second > 0 ? static_cast<double>(user_ticks + system_ticks) / ticks_per_second : 0;
  std::string text = std::string("it was ") + StateName(state);
  const std::string wait_channel = ReadFirstLine(directory + "/wchan");
  if (state != 'R' && !wait_channel.empty() && wait_channel != "0") {
    text += " (in " + wait_channel + ")";
  }
  char cpu[64];
  std::snprintf(cpu, sizeof(cpu), " after %.2f s of CPU", cpu_seconds);
  return text + cpu;
}

}  // namespace quiver::worker
