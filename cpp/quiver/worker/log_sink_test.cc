#include "quiver/worker/log_sink.h"

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace quiver::worker {
namespace {

TEST(LogSink, ReadsTheLoggingFormatAsALevel) {
  const LogLine record = ParseLogLine("ERROR:my.module:the row 3 is bad: x=1");
  EXPECT_EQ(record.level, "error");
  EXPECT_EQ(record.logger, "my.module");
  EXPECT_EQ(record.message, "the row 3 is bad: x=1");
  EXPECT_EQ(ParseLogLine("WARNING:root:").level, "warning");
  // Anything else is plain output, whole.
  for (const char* plain : {"ERROR: no logger", "ERROR:two words:x", "error:root:x", "INFO",
                            "INFO:", "quiver-worker[1] INFO connected", ""}) {
    const LogLine line = ParseLogLine(plain);
    EXPECT_EQ(line.level, "output") << plain;
    EXPECT_EQ(line.logger, "") << plain;
    EXPECT_EQ(line.message, plain);
  }
}

TEST(LogSink, QuotesAnyBytesAsValidJson) {
  EXPECT_EQ(JsonQuotedRepaired("a\"b\\c\n\t\x01"), "\"a\\\"b\\\\c\\n\\t\\u0001\"");
  EXPECT_EQ(JsonQuotedRepaired("caf\xc3\xa9"), "\"caf\xc3\xa9\"");  // UTF-8 kept as it is
  // Not UTF-8: a lone continuation byte, a truncated sequence, an overlong form, a surrogate.
  EXPECT_EQ(JsonQuotedRepaired("\x80|\xc3|\xc0\xaf|\xed\xa0\x80"),
            "\"\\ufffd|\\ufffd|\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd\"");
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(LogSink, WritesOneJsonLinePerLineWithItsBatch) {
  const std::string path = ::testing::TempDir() + "/log_sink_test_" + std::to_string(::getpid());
  {
    auto sink = LogSink::Open(path, "3", 77);
    ASSERT_TRUE(sink.ok()) << sink.status();
    (*sink)->Write("before\n");
    (*sink)->SetUdfs({"a", "b"});
    (*sink)->BatchSent(5);
    (*sink)->BatchSent(6);
    (*sink)->Write("INFO:lg:hal");  // a line in two writes
    (*sink)->Write("f\nnext");
    (*sink)->BatchAnswered();
    (*sink)->Write(" line\n");
    (*sink)->Write(std::string(kMaxLogLineBytes + 10, 'x'));
    // Destroyed: the unended last line is written too.
  }
  std::istringstream lines(ReadAll(path));
  std::string line;
  std::vector<std::string> all;
  while (std::getline(lines, line)) all.push_back(line);
  ::unlink(path.c_str());
  ASSERT_EQ(all.size(), 5u);
  EXPECT_NE(all[0].find("\"udfs\": [], \"worker\": \"3\", \"pid\": 77, \"batch\": null, "
                        "\"level\": \"output\", \"logger\": \"\", \"message\": \"before\"}"),
            std::string::npos)
      << all[0];
  EXPECT_NE(all[1].find("\"udfs\": [\"a\", \"b\"], \"worker\": \"3\", \"pid\": 77, \"batch\": 5, "
                        "\"level\": \"info\", \"logger\": \"lg\", \"message\": \"half\"}"),
            std::string::npos)
      << all[1];
  EXPECT_NE(all[2].find("\"batch\": 6, \"level\": \"output\", \"logger\": \"\", "
                        "\"message\": \"next line\"}"),
            std::string::npos)
      << all[2];
  // A line over the bound is cut in pieces of the bound.
  EXPECT_NE(all[3].find("\"" + std::string(kMaxLogLineBytes, 'x') + "\""), std::string::npos);
  EXPECT_NE(all[4].find("\"message\": \"xxxxxxxxxx\"}"), std::string::npos) << all[4];
  EXPECT_EQ(all[0].rfind("{\"time\": \"", 0), 0u);
}

TEST(LogSink, OpenSaysWhichPathCannotBeWritten) {
  auto sink = LogSink::Open("/proc/no/such/dir/worker.jsonl", "1", 1);
  ASSERT_FALSE(sink.ok());
  EXPECT_NE(sink.status().message().find("/proc/no/such/dir/worker.jsonl"), std::string::npos);
}

}  // namespace
}  // namespace quiver::worker
