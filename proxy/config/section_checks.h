// Checks shared by the config sections parsed outside gateway_config.cc ("quotas", "hooks"):
// unknown keys with a did-you-mean and the allowed list, bounded whole numbers, non-empty
// strings. Every problem goes to `problem` at a JSON pointer, prefixed with the section's name
// ("quotas: "), and parsing goes on.
//
// Thread safety: a plain value; use from one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace gatehouse::proxy {

class SectionChecks {
 public:
  using ProblemFn =
      std::function<void(const std::string& pointer, std::string message, bool at_key)>;

  SectionChecks(ProblemFn problem, std::string prefix)
      : problem_(std::move(problem)), prefix_(std::move(prefix)) {}

  void error(const std::string& ptr, std::string message, bool at_key = false) const;
  void checkKeys(const nlohmann::json& obj, const std::string& ptr,
                 const std::vector<std::string>& allowed, const std::string& what) const;
  bool number(const nlohmann::json& obj, const std::string& ptr, const char* key, int64_t min,
              int64_t max, uint32_t* out) const;
  bool string(const nlohmann::json& obj, const std::string& ptr, const char* key,
              std::string* out) const;

  static std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }
  static std::string joined(const std::vector<std::string>& names);

 private:
  ProblemFn problem_;
  std::string prefix_;
};

}  // namespace gatehouse::proxy
