// Tolerant reads of provider JSON for the tool extractors: a member that is missing or of the
// wrong type reads as empty / null / the fallback, never throws. Internal to proxy/tools.
#pragma once

#include <cstdint>
#include <string>

namespace gatehouse::proxy::tools {

// `j[key]` when `j` is an object that has it, else a null value.
template <typename Json>
const Json& member(const Json& j, const char* key) {
  static const Json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it != j.end() ? *it : kNull;
}

// `j[key]` when it is a string, else "".
template <typename Json>
std::string str(const Json& j, const char* key) {
  const Json& v = member(j, key);
  return v.is_string() ? v.template get<std::string>() : std::string();
}

// `j[key]` when it is an integer, else `fallback`.
template <typename Json>
int64_t num(const Json& j, const char* key, int64_t fallback) {
  const Json& v = member(j, key);
  return v.is_number_integer() ? v.template get<int64_t>() : fallback;
}

}  // namespace gatehouse::proxy::tools
