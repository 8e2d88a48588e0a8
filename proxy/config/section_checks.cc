// See section_checks.h.
#include "proxy/config/section_checks.h"

#include <algorithm>

#include "control/hujson.h"
#include "control/policy.h"

namespace gatehouse::proxy {

using control::JsonDoc;
using nlohmann::json;

std::string SectionChecks::joined(const std::vector<std::string>& names) {
  std::string list;
  for (const auto& a : names) list += (list.empty() ? "" : ", ") + a;
  return list;
}

void SectionChecks::error(const std::string& ptr, std::string message, bool at_key) const {
  problem_(ptr, prefix_ + message, at_key);
}

void SectionChecks::checkKeys(const json& obj, const std::string& ptr,
                              const std::vector<std::string>& allowed,
                              const std::string& what) const {
  for (const auto& [key, v] : obj.items()) {
    if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
    std::string best = control::closestName(key, allowed);
    error(JsonDoc::child(ptr, key),
          "unknown " + what + " " + quoted(key) +
              (best.empty() ? "" : " (did you mean " + quoted(best) + "?)") +
              "; allowed: " + joined(allowed),
          true);
  }
}

bool SectionChecks::number(const json& obj, const std::string& ptr, const char* key, int64_t min,
                           int64_t max, uint32_t* out) const {
  const json& v = obj[key];
  if (!v.is_number_integer() || v.get<int64_t>() < min || v.get<int64_t>() > max) {
    error(JsonDoc::child(ptr, key), quoted(key) + " must be a whole number from " +
                                        std::to_string(min) + " to " + std::to_string(max));
    return false;
  }
  *out = static_cast<uint32_t>(v.get<int64_t>());
  return true;
}

bool SectionChecks::string(const json& obj, const std::string& ptr, const char* key,
                           std::string* out) const {
  const json& v = obj[key];
  if (!v.is_string() || v.get_ref<const std::string&>().empty()) {
    error(JsonDoc::child(ptr, key), quoted(key) + " must be a non-empty string");
    return false;
  }
  *out = v.get<std::string>();
  return true;
}

}  // namespace gatehouse::proxy
