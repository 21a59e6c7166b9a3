#include "quiver/transport/registry.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace quiver::transport {
namespace {

// A transport that is only ever looked up, never used.
class NamedOnly : public Transport {
 public:
  arrow::Result<std::unique_ptr<WorkerEndpoint>> Prepare(const EndpointOptions&) override {
    return arrow::Status::NotImplemented("not used");
  }
};

bool Contains(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

TEST(TransportRegistry, ADescribedTransportIsOfferedUnderEveryNameAnUndescribedOneIsNot) {
  ASSERT_TRUE(RegisterTransport({"test+offered", "test-alias"}, std::make_shared<NamedOnly>(),
                                "a transport users may choose")
                  .ok());
  ASSERT_TRUE(RegisterTransport({"test+internal"}, std::make_shared<NamedOnly>()).ok());

  const auto names = OfferedTransportNames();
  EXPECT_TRUE(Contains(names, "test+offered"));
  EXPECT_TRUE(Contains(names, "test-alias"));
  EXPECT_FALSE(Contains(names, "test+internal"));
  EXPECT_TRUE(Contains(TransportNames(), "test+internal"));  // the engine still finds it
  EXPECT_TRUE(FindTransport("test-alias").ok());

  auto offered = FindOfferedTransport("test-alias");
  ASSERT_TRUE(offered.ok()) << offered.status().ToString();
  EXPECT_EQ(offered->names, (std::vector<std::string>{"test+offered", "test-alias"}));
  EXPECT_EQ(offered->description, "a transport users may choose");
}

TEST(TransportRegistry, AnUnknownOrInternalNameIsRefusedListingTheOfferedOnes) {
  ASSERT_TRUE(RegisterTransport({"test+listed"}, std::make_shared<NamedOnly>(), "listed").ok());
  for (const char* name : {"test+nowhere", "test+hidden"}) {
    if (std::string(name) == "test+hidden") {
      ASSERT_TRUE(RegisterTransport({name}, std::make_shared<NamedOnly>()).ok());
    }
    auto found = FindOfferedTransport(name);
    ASSERT_FALSE(found.ok()) << name;
    const std::string message = found.status().message();
    EXPECT_NE(message.find(std::string("unknown transport '") + name + "'"), std::string::npos);
    EXPECT_NE(message.find("test+listed"), std::string::npos) << message;
    EXPECT_EQ(message.find("test+hidden,"), std::string::npos) << message;
  }
}

TEST(TransportRegistry, ANameIsTakenOnce) {
  ASSERT_TRUE(RegisterTransport({"test+once"}, std::make_shared<NamedOnly>(), "once").ok());
  EXPECT_FALSE(RegisterTransport({"test+once"}, std::make_shared<NamedOnly>(), "again").ok());
}

}  // namespace
}  // namespace quiver::transport
