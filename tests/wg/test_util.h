// Small helpers shared by the wg/ unit tests.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "wg/crypto/blake2s.h"

namespace gatehouse::wg::testing {

inline std::vector<uint8_t> fromHex(std::string_view hex) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

inline std::string toHex(std::span<const uint8_t> b) {
  static const char* kDigits = "0123456789abcdef";
  std::string s;
  for (uint8_t c : b) {
    s += kDigits[c >> 4];
    s += kDigits[c & 15];
  }
  return s;
}

inline crypto::Key32 key32(std::string_view hex) {
  crypto::Key32 k{};
  auto v = fromHex(hex);
  std::copy(v.begin(), v.end(), k.begin());
  return k;
}

}  // namespace gatehouse::wg::testing
