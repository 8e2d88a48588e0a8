// Fuzz target: the SSE parser on arbitrary bytes, fed whole and then cut at random places.
// Traps on crashes, sanitizer reports, and on any disagreement between the two runs (events,
// their end offsets, errors): SSE parsing must not depend on how the stream was split. Also
// checks the offset contract: ends increase and stay inside the stream, the boundary never
// passes the bytes fed, and every string handed out is valid UTF-8.
//
// Input: byte 0 = options (bit 0 small event limit), bytes 1-4 = seed for the cuts, rest = stream.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http/sse.h"

namespace {

using namespace gatehouse::proxy::http;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool validUtf8(std::string s) { return !sanitizeUtf8(s); }

struct Run {
  std::string events;
  bool failed = false;
};

Run run(const SseParser::Options& options, std::string_view stream,
        const std::vector<size_t>& cuts) {
  SseParser parser(options);
  Run out;
  uint64_t lastEnd = 0;
  size_t from = 0;
  for (size_t i = 0; i <= cuts.size(); ++i) {
    size_t to = i < cuts.size() ? cuts[i] : stream.size();
    auto r = parser.feed(stream.substr(from, to - from));
    from = to;
    check(r.boundary <= to);
    for (const SseEvent& e : r.events) {
      check(e.end > lastEnd && e.end <= to);
      check(validUtf8(e.event) && validUtf8(e.data) && validUtf8(e.id));
      check(!e.event.empty());
      lastEnd = e.end;
      out.events += e.event + "|" + e.data + "|" + e.id + "|" +
                    (e.retry ? std::to_string(*e.retry) : "-") + "|" + std::to_string(e.end) + "\n";
    }
    if (!r.status.isOk()) {
      check(!parser.feed(std::string_view("\n\n")).status.isOk());  // sticky
      out.failed = true;
      return out;
    }
    check(parser.offset() == to);
    check(lastEnd <= parser.boundary());
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 5) return 0;
  SseParser::Options options;
  if (data[0] & 1) options.maxEventBytes = 48;
  uint32_t seed;
  std::memcpy(&seed, data + 1, 4);
  std::string_view stream(reinterpret_cast<const char*>(data + 5), size - 5);

  Run whole = run(options, stream, {});
  std::vector<size_t> cuts;
  uint32_t x = seed | 1;
  size_t pieces = stream.empty() ? 0 : x % 24;
  for (size_t i = 0; i < pieces; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    cuts.push_back(x % stream.size());
  }
  std::sort(cuts.begin(), cuts.end());
  Run split = run(options, stream, cuts);
  check(split.events == whole.events);
  check(split.failed == whole.failed);
  return 0;
}
