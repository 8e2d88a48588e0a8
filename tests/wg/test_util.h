// Small helpers shared by the wg/ unit tests.
#pragma once

#include <string>
#include <vector>

#include "wg/crypto/blake2s.h"

namespace gatehouse::wg::testing {

inline std::vector<uint8_t> unhex(const std::string& s) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < s.size(); i += 2)
    out.push_back(std::stoi(s.substr(i, 2), nullptr, 16));
  return out;
}

inline crypto::Key32 key32(const std::string& hex) {
  crypto::Key32 k{};
  auto v = unhex(hex);
  std::copy(v.begin(), v.end(), k.begin());
  return k;
}

inline std::string tohex(const uint8_t* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s += d[p[i] >> 4];
    s += d[p[i] & 15];
  }
  return s;
}

template <typename C>
std::string tohex(const C& c) {
  return tohex(c.data(), c.size());
}

}  // namespace gatehouse::wg::testing
