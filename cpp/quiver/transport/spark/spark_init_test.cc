#include "quiver/transport/spark/spark_init.h"

#include <gtest/gtest.h>

#include <arrow/type.h>

#include "quiver/protocol/batch_codec.h"

namespace quiver::transport::spark {
namespace {

v1::Init TwoUdfInit() {
  v1::Init init;
  init.set_protocol_version(1);
  arrow::Schema input({arrow::field("id", arrow::int64()), arrow::field("name", arrow::utf8()),
                       arrow::field("value", arrow::float64())});
  init.set_input_schema(protocol::SerializeSchema(input).ValueOrDie());
  init.set_session_time_zone("Europe/Paris");
  (*init.mutable_configuration())["key"] = "value";
  auto* first = init.add_udfs();
  first->set_name("loud");
  first->set_payload_format("python/ref");
  first->set_payload("udfs.py:shout");
  first->set_eval_type(v1::SCALAR_PANDAS);
  first->add_argument_offsets(1);
  auto* second = init.add_udfs();
  second->set_name("sum");
  second->set_payload_format("symbol");
  second->set_payload("add");
  second->add_argument_offsets(2);
  second->add_argument_offsets(0);
  second->set_return_type(
      protocol::SerializeSchema(arrow::Schema({arrow::field("sum", arrow::float64())}))
          .ValueOrDie());
  second->set_constructor_args(R"({"scale": 2})");
  return init;
}

TEST(TranslateInit, OneStreamPerUdfWithItsOwnArgumentColumns) {
  auto starts = TranslateInit(TwoUdfInit());
  ASSERT_TRUE(starts.ok()) << starts.status().ToString();
  ASSERT_EQ(starts->size(), 2u);
  const auto& first = (*starts)[0].messages.front().control().init();
  EXPECT_EQ(first.protocol_version(), 1u);
  EXPECT_EQ(first.data_format(), proto::ARROW);
  EXPECT_EQ(first.udf().format(), "python/ref");
  EXPECT_EQ(first.udf().payload(), "udfs.py:shout");
  EXPECT_EQ(first.udf().name(), "loud");
  EXPECT_EQ(first.udf().eval_type(), "SCALAR_PANDAS");
  EXPECT_EQ(first.timezone(), "Europe/Paris");
  EXPECT_EQ(first.session_conf().at("key"), "value");
  EXPECT_FALSE(first.has_output_schema());
  auto schema = protocol::DeserializeSchema(first.input_schema()).ValueOrDie();
  EXPECT_EQ(schema->ToString(), "name: string");

  const auto& second = (*starts)[1].messages.front().control().init();
  EXPECT_FALSE(second.udf().has_eval_type());
  EXPECT_EQ((*starts)[1].argument_offsets, (std::vector<int>{2, 0}));
  schema = protocol::DeserializeSchema(second.input_schema()).ValueOrDie();
  EXPECT_EQ(schema->ToString(), "value: double\nid: int64");
  EXPECT_TRUE(second.has_output_schema());
  EXPECT_EQ(second.parameters(), R"({"constructor_args": {"scale": 2}})");
}

TEST(TranslateInit, ALargePayloadGoesInChunksWithItsSizeAndCrc) {
  v1::Init init = TwoUdfInit();
  const std::string payload(2500, 'p');
  init.mutable_udfs(0)->set_payload(payload);
  auto starts = TranslateInit(init, /*chunk_bytes=*/1000);
  ASSERT_TRUE(starts.ok());
  const auto& messages = (*starts)[0].messages;
  ASSERT_EQ(messages.size(), 4u);  // Init and three chunks
  const auto& head = messages[0].control().init();
  EXPECT_TRUE(head.is_chunking_payload());
  EXPECT_EQ(head.udf().payload(), "");
  EXPECT_EQ(head.udf().payload_size(), 2500);
  EXPECT_EQ(head.udf().payload_crc32(), Crc32(payload));
  std::string joined;
  for (size_t i = 1; i < messages.size(); ++i) {
    const auto& chunk = messages[i].control().payload();
    joined += chunk.data();
    EXPECT_EQ(chunk.has_last(), i + 1 == messages.size());
  }
  EXPECT_EQ(joined, payload);
  EXPECT_EQ((*starts)[1].messages.size(), 1u);  // a small payload stays inline
}

TEST(TranslateInit, GroupedKindsAreRefusedNamingTheUdf) {
  v1::Init init = TwoUdfInit();
  init.mutable_udfs(1)->set_eval_type(v1::GROUPED_MAP);
  auto starts = TranslateInit(init);
  ASSERT_FALSE(starts.ok());
  EXPECT_NE(starts.status().message().find("UDF 'sum' is a GROUPED_MAP UDF"), std::string::npos)
      << starts.status().message();
}

TEST(TranslateInit, AnArgumentOutsideTheInputIsRefused) {
  v1::Init init = TwoUdfInit();
  init.mutable_udfs(0)->add_argument_offsets(7);
  auto starts = TranslateInit(init);
  ASSERT_FALSE(starts.ok());
  EXPECT_NE(starts.status().message().find("takes column 7 of an input of 3 columns"),
            std::string::npos);
}

TEST(Crc32, IsZlibsCrc32) {
  EXPECT_EQ(Crc32("123456789"), 0xCBF43926u);
  EXPECT_EQ(Crc32(""), 0u);
}

}  // namespace
}  // namespace quiver::transport::spark
