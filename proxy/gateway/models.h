// GET /v1/models answered by the gateway itself: only the models the caller's grants allow, in
// the client's API shape (Anthropic: {"data":[{"type":"model","id",...}],"has_more",...};
// OpenAI: {"object":"list","data":[{"id","object":"model","created","owned_by"}]}).
#pragma once

#include <string>
#include <vector>

#include "proxy/config/errors.h"
#include "proxy/config/gateway_config.h"

namespace gatehouse::proxy {

// `granted` holds "provider/model" names (GrantSet::grantedModels).
std::string modelsBody(ApiShape shape, const std::vector<std::string>& granted,
                       const GatewayConfig& config);

}  // namespace gatehouse::proxy
