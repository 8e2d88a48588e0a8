#include "proxy/gateway/models.h"

#include <nlohmann/json.hpp>

namespace gatehouse::proxy {

std::string modelsBody(ApiShape shape, const std::vector<std::string>& granted,
                       const GatewayConfig& config) {
  nlohmann::json data = nlohmann::json::array();
  for (const std::string& pm : granted) {
    size_t slash = pm.find('/');
    std::string provider = slash == std::string::npos ? "" : pm.substr(0, slash);
    std::string model = slash == std::string::npos ? pm : pm.substr(slash + 1);
    if (shape == ApiShape::kAnthropic) {
      data.push_back({{"type", "model"},
                      {"id", model},
                      {"display_name", model},
                      {"created_at", "1970-01-01T00:00:00Z"}});
    } else {
      data.push_back({{"id", model}, {"object", "model"}, {"created", 0}, {"owned_by", provider}});
    }
  }
  nlohmann::json body;
  if (shape == ApiShape::kAnthropic) {
    body = {{"data", data},
            {"has_more", false},
            {"first_id", data.empty() ? nlohmann::json(nullptr) : data.front()["id"]},
            {"last_id", data.empty() ? nlohmann::json(nullptr) : data.back()["id"]}};
  } else {
    body = {{"object", "list"}, {"data", data}};
  }
  return body.dump();
}

}  // namespace gatehouse::proxy
