// Fuzzes io::ChunkedInputStream, the byte stream under the gRPC result path:
// the input is [chunking seed][operation count][operations...][stream bytes].
// Every read, peek and tell must agree with a plain copy of the stream bytes.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz/fuzz_input.h"
#include "quiver/io/chunked_input_stream.h"

namespace {

// Aborts (a crash libFuzzer reports) when the stream and the model disagree.
void Expect(bool condition) {
  if (!condition) std::abort();
}

// memcmp that accepts the null data pointer of an empty buffer.
bool Same(const void* a, const void* b, size_t size) {
  return size == 0 || std::memcmp(a, b, size) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t seed = data[0];
  const size_t operations = std::min<size_t>(data[1], size - 2);
  const uint8_t* ops = data + 2;
  const uint8_t* bytes = ops + operations;
  const size_t length = size - 2 - operations;

  quiver::io::ChunkedInputStream stream;
  for (const auto& chunk : quiver::fuzz::SplitIntoChunks(bytes, length, seed)) {
    Expect(stream.Append(chunk).ok());
  }
  stream.Finish();
  size_t position = 0;
  for (size_t i = 0; i < operations; ++i) {
    const int64_t want = ops[i] >> 2;  // 0..63 bytes
    const size_t expected = std::min<size_t>(static_cast<size_t>(want), length - position);
    switch (ops[i] & 3) {
      case 0: {  // zero-copy read
        auto buffer = stream.Read(want);
        Expect(buffer.ok() && static_cast<size_t>((*buffer)->size()) == expected);
        Expect(Same((*buffer)->data(), bytes + position, expected));
        position += expected;
        break;
      }
      case 1: {  // read into caller memory
        std::vector<uint8_t> out(static_cast<size_t>(want));
        auto got = stream.Read(want, out.data());
        Expect(got.ok() && static_cast<size_t>(*got) == expected);
        Expect(Same(out.data(), bytes + position, expected));
        position += expected;
        break;
      }
      case 2: {  // peek does not move
        auto view = stream.Peek(want);
        Expect(view.ok() && view->size() == expected);
        Expect(Same(view->data(), bytes + position, view->size()));
        break;
      }
      default: {
        auto tell = stream.Tell();
        Expect(tell.ok() && static_cast<size_t>(*tell) == position);
        Expect(static_cast<size_t>(stream.bytes_buffered()) == length - position);
      }
    }
  }
  (void)stream.ExplainFailure(arrow::Status::Invalid("reader failed"));
  Expect(stream.Close().ok());
  Expect(!stream.Read(1).ok());  // a closed stream refuses reads
  return 0;
}
