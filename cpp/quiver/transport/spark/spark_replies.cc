#include "quiver/transport/spark/spark_replies.h"

#include <algorithm>
#include <cstdlib>
#include <string>
#include <string_view>

namespace quiver::transport::spark {
namespace {

// The metrics keys of a UDF's own counters: "counter.NAME".
constexpr std::string_view kCounterPrefix = "counter.";

uint64_t MetricValue(const SparkMetrics& metrics, const std::string& key) {
  auto found = metrics.find(key);
  if (found == metrics.end() || found->second.empty()) return 0;
  char* end = nullptr;
  const unsigned long long value = std::strtoull(found->second.c_str(), &end, 10);
  return *end == '\0' ? value : 0;
}

}  // namespace

std::string MessageName(const proto::UdfResponse& response) {
  if (response.has_data()) return "DataResponse";
  if (!response.has_control()) return "an empty UdfResponse";
  switch (response.control().control_case()) {
    case proto::UdfControlResponse::kInit:
      return "InitResponse";
    case proto::UdfControlResponse::kFinish:
      return "FinishResponse";
    case proto::UdfControlResponse::kCancel:
      return "CancelResponse";
    case proto::UdfControlResponse::kError:
      return "ErrorResponse";
    default:
      return "an empty UdfControlResponse";
  }
}

v1::Metrics MergeMetrics(const std::vector<SparkMetrics>& streams) {
  v1::Metrics merged;
  for (const SparkMetrics& m : streams) {
    merged.set_batches(std::max<uint64_t>(merged.batches(), MetricValue(m, "batches_in")));
    merged.set_rows_in(std::max<uint64_t>(merged.rows_in(), MetricValue(m, "rows_in")));
    merged.set_rows_out(std::max<uint64_t>(merged.rows_out(), MetricValue(m, "rows_out")));
    merged.set_udf_nanos(merged.udf_nanos() + MetricValue(m, "udf_time_ns"));
    merged.set_codec_nanos(merged.codec_nanos() + MetricValue(m, "codec_time_ns"));
    merged.set_peak_rss_bytes(
        std::max<uint64_t>(merged.peak_rss_bytes(), MetricValue(m, "peak_rss_bytes")));
    // The UDFs' own counters (docs/spark-protocol.md, section 6): a worker counts per process,
    // so each stream of one execution reports what every UDF added during it; the largest
    // report is the execution's, not their sum. The engine checks names and values after.
    for (const auto& [key, text] : m) {
      if (key.rfind(kCounterPrefix, 0) != 0) continue;
      const std::string name = key.substr(kCounterPrefix.size());
      uint64_t& total = (*merged.mutable_counters())[name];
      total = std::max<uint64_t>(total, MetricValue(m, key));
    }
  }
  return merged;
}

bool TranslateError(const proto::ExecutionError& error, const std::string& name, v1::Error* out) {
  switch (error.kind_case()) {
    case proto::ExecutionError::kUser: {
      v1::UserError* user = out->mutable_user_error();
      user->set_udf_name(name);
      user->set_message(error.user().message());
      user->set_error_class(error.user().error_class());
      user->set_traceback(error.user().traceback());
      return true;
    }
    case proto::ExecutionError::kWorker:
      out->mutable_worker_error()->set_udf_name(name);
      out->mutable_worker_error()->set_message(
          error.worker().message() +
          (error.worker().has_traceback() ? "\n" + error.worker().traceback() : ""));
      return true;
    case proto::ExecutionError::kProtocol:
      out->mutable_protocol_error()->set_message("on the Execute stream of UDF '" + name +
                                                 "': " + error.protocol().message());
      return true;
    default:
      return false;
  }
}

}  // namespace quiver::transport::spark
