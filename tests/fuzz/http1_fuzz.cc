// Fuzz target: HTTP/1.1 request and response parsers on arbitrary bytes, fed whole and then cut
// at random places. Besides crashes and sanitizer reports, it traps when the two runs disagree:
// the events (heads, body bytes, trailers, message ends, upgrades) and whether an error happened
// must not depend on how the bytes were split. Only the kind of error may differ, when two
// problems are found in a different order (say, a long head that is also malformed).
//
// Input: byte 0 = options (bit 0 response parser, bit 1 stopAfterMessage, bit 2 small limits,
// bits 3-5 request methods for the response parser), bytes 1-4 = seed for the cuts, rest = wire.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "proxy/http/http1.h"

namespace {

using namespace gatehouse::proxy::http;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

void describeHeaders(std::string& out, const HeaderList& headers) {
  for (const Header& h : headers) {
    out += h.name + ":" + h.value + "\n";
    check(isValidHeaderName(h.name));
    check(isValidHeaderValue(h.value));  // the proxy re-serializes what it parsed
  }
}

struct Transcript {
  std::string events;
  std::string body;  // of the message in progress
  bool error = false;
  bool upgraded = false;
};

void recordHead(Transcript& t, const RequestHead& h) {
  t.events += "H " + h.method + " " + h.target + " " + std::to_string(h.keepAlive) +
              std::to_string(h.upgrade) + std::to_string(static_cast<int>(h.framing)) + "\n";
  describeHeaders(t.events, h.headers);
}

void recordHead(Transcript& t, const ResponseHead& h) {
  t.events += "H " + std::to_string(h.status) + " " + h.reason + " " + std::to_string(h.keepAlive) +
              std::to_string(h.upgrade) + std::to_string(static_cast<int>(h.framing)) + "\n";
  describeHeaders(t.events, h.headers);
}

template <typename Event>
void record(Transcript& t, std::vector<Event>& events, std::string_view buf) {
  for (auto& e : events) {
    std::visit(
        [&](auto& ev) {
          using T = std::decay_t<decltype(ev)>;
          if constexpr (std::is_same_v<T, InterimResponse>) {
            check(ev.head.status >= 100 && ev.head.status < 200 && ev.head.status != 101);
            t.events += "I " + std::to_string(ev.head.status) + "\n";
          } else if constexpr (std::is_same_v<T, BodyChunk>) {
            check(!ev.data.empty());
            check(ev.data.data() >= buf.data() && ev.data.data() + ev.data.size() <= buf.end());
            t.body += ev.data;  // chunk sizes may differ with the split; the bytes may not
          } else if constexpr (std::is_same_v<T, MessageEnd>) {
            t.events += "B" + std::to_string(t.body.size()) + ":" + t.body + "\nE\n";
            t.body.clear();
            describeHeaders(t.events, ev.trailers);
          } else {
            recordHead(t, ev);
          }
        },
        e);
  }
}

// Feeds each piece straight from the input (no copy: every byte is consumed unless the parser
// stops at a message end or an upgrade, and then the rest of the piece is fed again).
template <typename Parser>
Transcript run(Parser& parser, std::string_view wire, const std::vector<size_t>& cuts) {
  Transcript t;
  size_t from = 0;
  for (size_t i = 0; i <= cuts.size() && !t.upgraded; ++i) {
    size_t to = i < cuts.size() ? cuts[i] : wire.size();
    std::string_view piece = wire.substr(from, to - from);
    from = to;
    do {
      uint64_t before = parser.offset();
      auto r = parser.feed(piece);
      record(t, r.events, piece);
      check(r.consumed <= piece.size());
      if (r.stop == StopReason::Error) {
        check(r.error.has_value() && !r.error->message.empty());
        check(parser.feed(piece).stop == StopReason::Error);  // sticky
        t.error = true;
        return t;
      }
      check(parser.offset() == before + r.consumed);
      check(r.stop != StopReason::NeedMore || r.consumed == piece.size());
      piece.remove_prefix(r.consumed);
      t.upgraded = r.stop == StopReason::Upgrade;
    } while (!piece.empty() && !t.upgraded);
  }
  if (t.upgraded) return t;
  auto r = parser.finish();
  record(t, r.events, {});
  t.error = r.error.has_value();
  return t;
}

struct Rng {
  uint32_t state;
  uint32_t next() {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    return state;
  }
};

template <typename Parser, typename Options>
void differential(const Options& options, std::string_view wire, uint32_t seed, uint8_t methods) {
  auto make = [&] {
    Parser p(options);
    if constexpr (std::is_same_v<Parser, ResponseParser>) {
      const char* names[] = {"GET", "HEAD", "CONNECT", "POST"};
      for (int i = 0; i < 3; ++i) p.expectResponseTo(names[(methods >> i) & 3]);
    }
    return p;
  };
  Parser whole = make();
  Transcript expected = run(whole, wire, {});
  std::vector<size_t> cuts;
  Rng rng{seed | 1};
  size_t pieces = wire.empty() ? 0 : rng.next() % 16;
  for (size_t i = 0; i < pieces; ++i) cuts.push_back(rng.next() % wire.size());
  std::sort(cuts.begin(), cuts.end());
  Parser split = make();
  Transcript got = run(split, wire, cuts);
  check(got.events == expected.events);
  check(got.body == expected.body);
  check(got.error == expected.error);
  check(got.upgraded == expected.upgraded);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 5) return 0;
  uint8_t flags = data[0];
  uint32_t seed;
  std::memcpy(&seed, data + 1, 4);
  std::string_view wire(reinterpret_cast<const char*>(data + 5), size - 5);
  bool stop = flags & 2;
  bool small = flags & 4;
  if (flags & 1) {
    ResponseParser::Options o;
    o.stopAfterMessage = stop;
    o.reportInterim = (flags & 0x40) == 0;
    if (small) {
      o.maxHeaderBytes = 64;
      o.maxBodyBytes = 32;
    }
    differential<ResponseParser>(o, wire, seed, static_cast<uint8_t>(flags >> 3));
  } else {
    RequestParser::Options o;
    o.stopAfterMessage = stop;
    if (small) {
      o.maxHeaderBytes = 64;
      o.maxBodyBytes = 32;
    }
    differential<RequestParser>(o, wire, seed, 0);
  }
  return 0;
}
