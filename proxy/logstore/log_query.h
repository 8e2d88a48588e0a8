// LogReader: the read side of the request log, for the admin API and dashboards. It answers four
// questions (and, in tool_query.h, two about tool calls) over the database a LogStore writes: which
// requests (a filtered, paged list, newest first), what exactly happened in one request (headers
// and bodies), how much was used (token and cost sums grouped by user, tag, model, day or user
// agent), and which sessions ran.
//
// Thread safety: every method may be called from any thread. A LogReader has its own read-only
// connection, separate from the writer's, so queries never wait for inserts (WAL); concurrent
// queries on one LogReader take turns on a mutex.
//
// Results are plain structs with a toJson() each, in the shapes LOG_FORMAT.md "JSON" documents.
// Times are Unix ms; ranges are [since_ms, until_ms).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/logstore/record.h"
#include "proxy/logstore/tool_query.h"
#include "wg/status.h"

struct sqlite3;

namespace gatehouse::proxy {

// Which requests a query covers: a request matches when every field that is set matches.
struct LogFilter {
  std::string user = {};   // user_login, exact
  std::string tag = {};    // one of the request's tags, exact ("tag:ci" does not match "tag:ci-2")
  std::string model = {};  // exact
  std::string session = {};  // session id, exact
  std::optional<int> status = {};
  std::optional<int64_t> since_ms = {};  // start_ms >= since_ms
  std::optional<int64_t> until_ms = {};  // start_ms < until_ms
};

struct ListRequestsQuery {
  LogFilter filter = {};
  size_t limit = 50;  // clamped to [1, 1000]
  // RequestPage::next_cursor of the previous page; empty = from the newest.
  std::string cursor = {};
  size_t offset = 0;  // rows skipped after the cursor (a cursor is cheaper for deep pages)
};

// A page of requests, newest first (by start_ms, then by insertion order). The records carry no
// headers and no bodies; getRequest has them.
struct RequestPage {
  std::vector<RequestRecord> records;
  std::string next_cursor;  // empty when this is the last page
};

enum class UsageGroupBy { kUser, kTag, kModel, kDay, kUserAgent };
std::string_view toString(UsageGroupBy g);
std::optional<UsageGroupBy> parseUsageGroupBy(std::string_view name);  // "user", "tag", ...

// Sums over requests. Unknown token counts and unknown costs add nothing; unpriced_requests says
// how many requests had no price, so a cost is a lower bound when it is not 0.
struct UsageTotals {
  int64_t requests = 0;
  int64_t input = 0;
  int64_t output = 0;
  int64_t cache_read = 0;
  int64_t cache_write_5m = 0;
  int64_t cache_write_1h = 0;
  int64_t reasoning = 0;
  int64_t cost_nanodollars = 0;
  int64_t unpriced_requests = 0;
  bool operator==(const UsageTotals&) const = default;
};

struct UsageQuery {
  UsageGroupBy group_by = UsageGroupBy::kUser;
  LogFilter filter = {};
};

// One group. The key is the user login, the tag, the model, the UTC day ("2025-03-01") or the
// user agent. By tag, a request with two tags counts in both groups and an untagged request in
// none. Rows come sorted by key.
struct UsageRow {
  std::string key;
  UsageTotals totals;
};

struct SessionsQuery {
  LogFilter filter = {};  // sums cover only the matching requests of each session
  size_t limit = 50;      // clamped to [1, 1000]
  size_t offset = 0;
};

// A session is the requests of one user that carry one session id: the id comes from the client,
// so two users sending the same id get two sessions. Sorted by last_ms, newest first.
struct SessionRow {
  std::string session_id;
  std::string user_login;
  int64_t first_ms = 0;
  int64_t last_ms = 0;
  UsageTotals totals;
};

nlohmann::json toJson(const RequestPage& page);
nlohmann::json toJson(const UsageTotals& totals);
nlohmann::json toJson(const std::vector<UsageRow>& rows);
nlohmann::json toJson(const std::vector<SessionRow>& rows);

class LogReader {
 public:
  // Opens the database at `path`, which a LogStore must have created (its schema version must be
  // the one this binary knows: ENOENT when there is no log yet, EINVAL on a version mismatch).
  static Result<std::unique_ptr<LogReader>> open(const std::string& path);
  ~LogReader();
  LogReader(const LogReader&) = delete;
  LogReader& operator=(const LogReader&) = delete;

  // EINVAL for a cursor this reader did not produce.
  Result<RequestPage> listRequests(const ListRequestsQuery& query);
  // The whole record, headers included; bodies decompressed when `with_bodies`. ENOENT when no
  // record has that id (never written, or expired); EILSEQ when a stored body is damaged.
  Result<RequestRecord> getRequest(std::string_view id, bool with_bodies);
  Result<std::vector<UsageRow>> usage(const UsageQuery& query);
  Result<std::vector<SessionRow>> sessions(const SessionsQuery& query);
  // Tool calls (tool_query.h; implemented in tool_query.cc). EINVAL for a foreign cursor.
  Result<ToolPage> listTools(const ListToolsQuery& query);
  Result<std::vector<ToolStatsRow>> toolStats(const ToolFilter& filter);

 private:
  explicit LogReader(sqlite3* db) : db_(db) {}

  std::mutex mu_;  // guards db_: one statement at a time on the connection
  sqlite3* db_;
};

}  // namespace gatehouse::proxy
