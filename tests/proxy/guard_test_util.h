// Helpers for the guard tests: feeding a guard in chunks and reading SSE data payloads back.
#pragma once

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "proxy/tools/stream_guard.h"

namespace gatehouse::proxy::tools::testing {

// `in` through `g` in pieces of `chunk` bytes, then finish().
inline std::string feedAll(StreamGuard& g, const std::string& in, size_t chunk) {
  std::string out;
  for (size_t at = 0; at < in.size(); at += chunk) out += g.feed(in.substr(at, chunk));
  return out + g.finish();
}

// `in` through `g` cut at random places (1 to 2 × mean bytes apart), seeded.
inline std::string feedRandom(StreamGuard& g, const std::string& in, uint32_t seed, size_t mean) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<size_t> len(1, 2 * mean);
  std::string out;
  for (size_t at = 0; at < in.size();) {
    size_t n = len(rng);
    out += g.feed(in.substr(at, n));
    at += n;
  }
  return out + g.finish();
}

// Bad input: `in` through `g` leaves unchanged and the guard says it passed it through.
inline void expectHandedOver(StreamGuard& g, const std::string& in, size_t chunk = 17) {
  EXPECT_EQ(feedAll(g, in, chunk), in);
  EXPECT_TRUE(g.passthrough());
}

// An event over the SSE parser's limit (16 MiB) never stalls a guard.
inline std::string overSseLimit() { return "data: " + std::string(17 << 20, 'x'); }

// The data payloads of an SSE text (one "data: " line per event), parsed; "[DONE]" as a string.
inline std::vector<nlohmann::json> dataOf(const std::string& sse) {
  std::vector<nlohmann::json> out;
  size_t at = 0;
  while ((at = sse.find("data: ", at)) != std::string::npos) {
    size_t nl = sse.find('\n', at);
    std::string d = sse.substr(at + 6, nl - at - 6);
    out.push_back(d == "[DONE]" ? nlohmann::json("[DONE]") : nlohmann::json::parse(d));
    at = nl;
  }
  return out;
}

}  // namespace gatehouse::proxy::tools::testing
