// The gateway config's "quotas" section (CONFIG.md "Quotas"): buckets, rules and the store,
// parsed into a QuotaConfig (proxy/quota/ledger.h). Called by the config loader; every problem is
// reported through `problem` at a JSON pointer, and parsing goes on to find the next one.
//
// Thread safety: a pure function over its arguments.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "proxy/config/grants.h"
#include "proxy/quota/ledger.h"

namespace gatehouse::proxy {

struct QuotaParseContext {
  GrantProblemFn problem;
  std::function<std::string(const std::string&)> resolve_path;  // relative → absolute
  std::function<std::string(const std::string&)> origin;        // pointer → "file:line:col"
  bool resolve_files = true;
};

void parseQuotaSection(const nlohmann::json& value, const std::string& ptr,
                       const QuotaParseContext& ctx, QuotaConfig* out);

}  // namespace gatehouse::proxy
