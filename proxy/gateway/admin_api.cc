#include "proxy/gateway/admin_api.h"

#include <charconv>
#include <map>
#include <nlohmann/json.hpp>

#include "proxy/tools/taxonomy.h"

namespace gatehouse::proxy {
namespace {

using nlohmann::json;

std::string urlDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size()) {
      int v = 0;
      auto r = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
      if (r.ec == std::errc() && r.ptr == s.data() + i + 3) {
        out += static_cast<char>(v);
        i += 2;
      } else {
        out += s[i];
      }
    } else {
      out += s[i];
    }
  }
  return out;
}

std::map<std::string, std::string> parseQuery(std::string_view q) {
  std::map<std::string, std::string> out;
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view kv = q.substr(0, amp);
    size_t eq = kv.find('=');
    out[urlDecode(kv.substr(0, eq))] =
        eq == std::string_view::npos ? "" : urlDecode(kv.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return out;
}

AdminResponse error(int status, const std::string& message) {
  return {status, json{{"error", {{"message", message}, {"status", status}}}}.dump()};
}

bool toInt(const std::string& s, int64_t* out) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// Fills the shared filter; returns a message naming the bad parameter, or "".
std::string parseFilter(const std::map<std::string, std::string>& q, LogFilter* f) {
  for (const auto& [k, v] : q) {
    int64_t n = 0;
    if (k == "user") {
      f->user = v;
    } else if (k == "tag") {
      f->tag = v;
    } else if (k == "model") {
      f->model = v;
    } else if (k == "session") {
      f->session = v;
    } else if (k == "status") {
      if (!toInt(v, &n)) return "status: want an HTTP status code";
      f->status = static_cast<int>(n);
    } else if (k == "since") {
      if (!toInt(v, &n)) return "since: want Unix milliseconds";
      f->since_ms = n;
    } else if (k == "until") {
      if (!toInt(v, &n)) return "until: want Unix milliseconds";
      f->until_ms = n;
    }
  }
  return "";
}

// Tool-call filters: the shared ones plus type, name and command (a word prefix).
ToolFilter toolFilter(const LogFilter& f, const std::map<std::string, std::string>& q) {
  ToolFilter t;
  t.user = f.user;
  t.tag = f.tag;
  t.session = f.session;
  t.since_ms = f.since_ms;
  t.until_ms = f.until_ms;
  auto get = [&q](const char* k) {
    auto it = q.find(k);
    return it == q.end() ? std::string() : it->second;
  };
  t.type = get("type");
  t.name = get("name");
  t.command = get("command");
  t.guardrail = get("guardrail");
  return t;
}

AdminResponse toolsRequest(LogReader* reader, std::string_view path, const LogFilter& filter,
                           const std::map<std::string, std::string>& q) {
  ToolFilter tf = toolFilter(filter, q);
  if (!tf.guardrail.empty() && tf.guardrail != "any" && tf.guardrail != "flag" &&
      tf.guardrail != "block" && tf.guardrail != "enforced") {
    return error(400, "guardrail: want any, flag, block or enforced");
  }
  if (!tf.type.empty() && !tools::parseToolType(tf.type)) {
    return error(400,
                 "type: want shell, file_read, file_write, file_edit, search, web, mcp, subagent "
                 "or other");
  }
  if (path == "/api/tools/stats") {
    auto rows = reader->toolStats(tf);
    if (!rows) return error(500, rows.status().message());
    return {200, json{{"rows", toJson(rows.value())}}.dump()};
  }
  ListToolsQuery query;
  query.filter = std::move(tf);
  int64_t n = 0;
  if (auto it = q.find("limit"); it != q.end() && toInt(it->second, &n)) {
    query.limit = static_cast<size_t>(n);
  }
  if (auto it = q.find("offset"); it != q.end() && toInt(it->second, &n)) {
    query.offset = static_cast<size_t>(n);
  }
  if (auto it = q.find("cursor"); it != q.end()) query.cursor = it->second;
  auto page = reader->listTools(query);
  if (!page) return error(400, page.status().message());
  return {200, toJson(page.value()).dump()};
}

}  // namespace

AdminResponse handleAdminRequest(LogReader* reader, std::string_view method,
                                 std::string_view target) {
  if (method != "GET") return error(405, "the admin API is read-only: use GET");
  if (reader == nullptr) return error(503, "request logging is off: no log database configured");
  size_t qpos = target.find('?');
  std::string_view path = target.substr(0, qpos);
  auto q = parseQuery(qpos == std::string_view::npos ? "" : target.substr(qpos + 1));
  LogFilter filter;
  if (std::string bad = parseFilter(q, &filter); !bad.empty()) return error(400, bad);
  int64_t n = 0;
  if (path == "/api/requests") {
    ListRequestsQuery query;
    query.filter = filter;
    if (q.count("limit") && toInt(q["limit"], &n)) query.limit = static_cast<size_t>(n);
    if (q.count("cursor")) query.cursor = q["cursor"];
    auto page = reader->listRequests(query);
    if (!page) return error(400, page.status().message());
    return {200, toJson(page.value()).dump()};
  }
  if (path.rfind("/api/requests/", 0) == 0) {
    std::string id(path.substr(14));
    auto rec = reader->getRequest(id, true);
    if (!rec) {
      return error(rec.status().code() == ENOENT ? 404 : 500, rec.status().message());
    }
    return {200, toJson(rec.value(), true).dump()};
  }
  if (path == "/api/usage") {
    UsageQuery query;
    query.filter = filter;
    if (q.count("group_by")) {
      auto g = parseUsageGroupBy(q["group_by"]);
      if (!g) return error(400, "group_by: want user, tag, model, day or user_agent");
      query.group_by = *g;
    }
    auto rows = reader->usage(query);
    if (!rows) return error(500, rows.status().message());
    return {200, json{{"group_by", std::string(toString(query.group_by))},
                      {"rows", toJson(rows.value())}}
                     .dump()};
  }
  if (path == "/api/sessions") {
    SessionsQuery query;
    query.filter = filter;
    if (q.count("limit") && toInt(q["limit"], &n)) query.limit = static_cast<size_t>(n);
    if (q.count("offset") && toInt(q["offset"], &n)) query.offset = static_cast<size_t>(n);
    auto rows = reader->sessions(query);
    if (!rows) return error(500, rows.status().message());
    return {200, json{{"sessions", toJson(rows.value())}}.dump()};
  }
  if (path == "/api/tools" || path == "/api/tools/stats") {
    return toolsRequest(reader, path, filter, q);
  }
  return error(404, "unknown admin endpoint " + std::string(path) +
                        " (try /api/requests, /api/usage, /api/sessions, /api/tools, /api/quotas, "
                        "/api/metrics)");
}

}  // namespace gatehouse::proxy
