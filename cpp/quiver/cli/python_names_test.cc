#include "quiver/cli/python_names.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "quiver/cli/usage_error.h"

namespace quiver::cli {
namespace {

namespace fs = std::filesystem;

class PythonNamesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    directory_ = fs::temp_directory_path() / ("quiver-python-names-" + std::to_string(getpid()));
    fs::create_directories(directory_);
  }
  void TearDown() override { fs::remove_all(directory_); }

  std::string Write(const std::string& text) {
    const auto path = directory_ / "udfs.py";
    std::ofstream(path) << text;
    return path.string();
  }

  fs::path directory_;
};

constexpr char kUdfs[] =
    "import quiver\n"
    "\n"
    "@quiver.udf(returns='string')\n"
    "def shout(names):\n"
    "    return names\n"
    "\n"
    "async def fetch(x):\n"
    "    return x\n"
    "\n"
    "class Scorer:\n"
    "    def score(self, x):\n"
    "        return x\n"
    "\n"
    "double = lambda x: x\n"
    "LIMIT: int = 3\n";

TEST_F(PythonNamesTest, ListsTheTopLevelDefinitionsInOrder) {
  EXPECT_EQ(TopLevelNames(kUdfs),
            (std::vector<std::string>{"shout", "fetch", "Scorer", "double", "LIMIT"}));
}

TEST_F(PythonNamesTest, AMisspelledFunctionIsAUsageErrorNamingTheFileAndTheClosestName) {
  const std::string path = Write(kUdfs);
  const arrow::Status status = CheckPythonFunction(path, "shuot", "--udf");
  ASSERT_TRUE(IsUsageError(status)) << status.ToString();
  const std::string message = status.message();
  EXPECT_NE(message.find("--udf: " + path + " has no function 'shuot'"), std::string::npos)
      << message;
  EXPECT_NE(message.find("did you mean 'shout'?"), std::string::npos) << message;
  EXPECT_EQ(message.find("_quiver_udf"), std::string::npos) << message;
}

TEST_F(PythonNamesTest, AcceptsEveryNameTheFileMentions) {
  const std::string path = Write(kUdfs + std::string("from helpers import tidy as neat\n"));
  for (const char* name : {"shout", "fetch", "Scorer.score", "double", "neat", "tidy"}) {
    EXPECT_TRUE(CheckPythonFunction(path, name, "--udf").ok()) << name;
  }
}

TEST_F(PythonNamesTest, NeverRefusesAFileWithAStarImport) {
  const std::string path = Write("from helpers import *\n");
  EXPECT_TRUE(CheckPythonFunction(path, "anything", "--udf").ok());
}

TEST_F(PythonNamesTest, APartOfALongerNameDoesNotCount) {
  const std::string path = Write("def shout_all(x):\n    return x\n");
  EXPECT_TRUE(IsUsageError(CheckPythonFunction(path, "shout", "--apply")));
}

}  // namespace
}  // namespace quiver::cli
