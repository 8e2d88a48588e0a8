#include "proxy/logstore/log_query.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <nlohmann/json.hpp>
#include <variant>

#include "proxy/logstore/log_db.h"
#include "proxy/logstore/log_store.h"

namespace gatehouse::proxy {
namespace {

using logstore::appendPage;
using logstore::clampLimit;
using logstore::decompressBody;
using logstore::forEachRow;
using logstore::makeCursor;
using logstore::parseCursor;
using logstore::sqlExec;
using logstore::sqlOpen;
using logstore::SqlQuery;
using logstore::sqlQueryText;
using logstore::SqlStmt;
using logstore::stringsFromJson;
using logstore::toValidUtf8;

// How a query reaches a request's start time and tags. With a tag filter the query is driven by
// request_tags (alias t), whose (tag, start_ms) index yields that tag's requests newest first and
// bounds a time window; otherwise it reads requests (alias r) through the index its filter picks.
struct Shape {
  bool tags_driven = false;
  const char* time_col = "r.start_ms";
  const char* seq_col = "r.seq";
};

Shape shapeFor(const LogFilter& f) {
  if (!f.tag.empty()) return Shape{true, "t.start_ms", "t.seq"};
  return Shape{};
}

std::string fromClause(const Shape& shape) {
  return shape.tags_driven ? " FROM request_tags t JOIN requests r ON r.seq = t.seq"
                           : " FROM requests r";
}

// Appends " WHERE ..." (always present, so callers can add " AND ...") for `f`.
void appendWhere(const LogFilter& f, const Shape& shape, SqlQuery& q) {
  q.sql += " WHERE 1";
  auto text = [&q](const char* clause, const std::string& v) {
    if (v.empty()) return;
    q.sql += clause;
    q.args.emplace_back(v);
  };
  if (shape.tags_driven) text(" AND t.tag = ?", f.tag);
  text(" AND r.user_login = ?", f.user);
  text(" AND r.model = ?", f.model);
  text(" AND r.session_id = ?", f.session);
  if (f.status) {
    q.sql += " AND r.status = ?";
    q.args.emplace_back(int64_t{*f.status});
  }
  if (f.since_ms) {
    q.sql += std::string(" AND ") + shape.time_col + " >= ?";
    q.args.emplace_back(*f.since_ms);
  }
  if (f.until_ms) {
    q.sql += std::string(" AND ") + shape.time_col + " < ?";
    q.args.emplace_back(*f.until_ms);
  }
}

constexpr const char* kRecordColumns =
    "r.seq, r.id, r.start_ms, r.node_id, r.node_name, r.user_login, r.user_display_name, "
    "r.groups, r.tags, r.session_id, r.user_agent, r.provider, r.api_kind, r.model, r.method, "
    "r.path, r.status, r.error, r.latency_ms, r.ttfb_ms, r.streamed, r.partial, r.input_tokens, "
    "r.output_tokens, r.cache_read_tokens, r.cache_write_5m_tokens, r.cache_write_1h_tokens, "
    "r.reasoning_tokens, r.cost_nanodollars, r.bodies_dropped, r.hook";
constexpr int kHeaderColumn = 31;  // request_headers, response_headers follow kRecordColumns

std::vector<RecordHeader> headersFromJson(const std::string& text) {
  std::vector<RecordHeader> out;
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_array()) return out;
  for (const auto& pair : j) {
    if (pair.is_array() && pair.size() == 2 && pair[0].is_string() && pair[1].is_string()) {
      out.push_back({pair[0].get<std::string>(), pair[1].get<std::string>()});
    }
  }
  return out;
}

RequestRecord readRecord(const SqlStmt& s, bool headers) {
  RequestRecord r;
  r.id = s.text(1);
  r.start_ms = s.i64(2);
  r.identity.node_id = s.text(3);
  r.identity.node_name = s.text(4);
  r.identity.user_login = s.text(5);
  r.identity.user_display_name = s.text(6);
  r.identity.groups = stringsFromJson(s.text(7));
  r.identity.tags = stringsFromJson(s.text(8));
  r.session_id = s.text(9);
  r.user_agent = s.text(10);
  r.provider = s.text(11);
  r.api_kind = s.text(12);
  r.model = s.text(13);
  r.method = s.text(14);
  r.path = s.text(15);
  r.status = static_cast<int>(s.i64(16));
  r.error = s.text(17);
  r.latency_ms = s.i64(18);
  r.ttfb_ms = s.optI64(19);
  r.streamed = s.i64(20) != 0;
  r.partial = s.i64(21) != 0;
  r.tokens = {s.optI64(22), s.optI64(23), s.optI64(24), s.optI64(25), s.optI64(26), s.optI64(27)};
  r.cost_nanodollars = s.optI64(28);
  r.bodies_dropped = s.i64(29) != 0;
  r.hook = s.text(30);
  if (headers) {
    r.request_headers = headersFromJson(s.text(kHeaderColumn));
    r.response_headers = headersFromJson(s.text(kHeaderColumn + 1));
  }
  return r;
}

// Aggregate columns read by readTotals, in this order.
constexpr const char* kTotalsColumns =
    "COUNT(*), COALESCE(SUM(r.input_tokens), 0), COALESCE(SUM(r.output_tokens), 0), "
    "COALESCE(SUM(r.cache_read_tokens), 0), COALESCE(SUM(r.cache_write_5m_tokens), 0), "
    "COALESCE(SUM(r.cache_write_1h_tokens), 0), COALESCE(SUM(r.reasoning_tokens), 0), "
    "COALESCE(SUM(r.cost_nanodollars), 0), COUNT(*) - COUNT(r.cost_nanodollars)";

UsageTotals readTotals(const SqlStmt& s, int first) {
  return UsageTotals{s.i64(first),     s.i64(first + 1), s.i64(first + 2),
                     s.i64(first + 3), s.i64(first + 4), s.i64(first + 5),
                     s.i64(first + 6), s.i64(first + 7), s.i64(first + 8)};
}

// Each grouping: its name in the admin API and the SQL expression of its key.
struct GroupBy {
  UsageGroupBy group_by;
  std::string_view name;
  const char* key_sql;
};
constexpr GroupBy kGroupBys[] = {
    {UsageGroupBy::kUser, "user", "r.user_login"},
    {UsageGroupBy::kTag, "tag", "g.tag"},
    {UsageGroupBy::kModel, "model", "r.model"},
    {UsageGroupBy::kDay, "day", "strftime('%Y-%m-%d', r.start_ms / 1000, 'unixepoch')"},
    {UsageGroupBy::kUserAgent, "user_agent", "r.user_agent"},
};

const GroupBy& groupBy(UsageGroupBy g) {
  for (const auto& entry : kGroupBys) {
    if (entry.group_by == g) return entry;
  }
  return kGroupBys[0];
}

// A read transaction so that a record and its bodies come from one snapshot.
class ReadTxn {
 public:
  explicit ReadTxn(sqlite3* db) : db_(db) { sqlExec(db_, "BEGIN"); }
  ~ReadTxn() { sqlExec(db_, "COMMIT"); }

 private:
  sqlite3* db_;
};

}  // namespace

std::string_view toString(UsageGroupBy g) { return groupBy(g).name; }

std::optional<UsageGroupBy> parseUsageGroupBy(std::string_view name) {
  for (const auto& entry : kGroupBys) {
    if (entry.name == name) return entry.group_by;
  }
  return std::nullopt;
}

nlohmann::json toJson(const RequestPage& page) {
  auto records = nlohmann::json::array();
  for (const auto& r : page.records) records.push_back(toJson(r, /*detail=*/false));
  return {{"requests", records},
          {"next_cursor",
           page.next_cursor.empty() ? nlohmann::json(nullptr) : nlohmann::json(page.next_cursor)}};
}

nlohmann::json toJson(const UsageTotals& t) {
  return {{"requests", t.requests},
          {"input", t.input},
          {"output", t.output},
          {"cache_read", t.cache_read},
          {"cache_write_5m", t.cache_write_5m},
          {"cache_write_1h", t.cache_write_1h},
          {"reasoning", t.reasoning},
          {"cost_nanodollars", t.cost_nanodollars},
          {"unpriced_requests", t.unpriced_requests}};
}

nlohmann::json toJson(const std::vector<UsageRow>& rows) {
  auto out = nlohmann::json::array();
  for (const auto& row : rows) {
    auto j = toJson(row.totals);
    j["key"] = toValidUtf8(row.key);
    out.push_back(std::move(j));
  }
  return out;
}

nlohmann::json toJson(const std::vector<SessionRow>& rows) {
  auto out = nlohmann::json::array();
  for (const auto& row : rows) {
    out.push_back({{"session_id", toValidUtf8(row.session_id)},
                   {"user_login", toValidUtf8(row.user_login)},
                   {"first_ms", row.first_ms},
                   {"last_ms", row.last_ms},
                   {"totals", toJson(row.totals)}});
  }
  return out;
}

Result<std::unique_ptr<LogReader>> LogReader::open(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return Status::fromErrno(errno, path + ": no request log (the gateway creates it)");
  }
  auto db = sqlOpen(path, /*create=*/false, /*busy_timeout_ms=*/5000);
  if (!db) return db.status();
  std::unique_ptr<LogReader> reader(new LogReader(*db));
  if (Status s = sqlExec(*db, "PRAGMA query_only=1"); !s) return s;
  auto version = sqlQueryText(*db, "PRAGMA user_version");
  if (!version) return version.status();
  if (*version != std::to_string(LogStore::latestSchemaVersion())) {
    return Status(EINVAL, path + ": request log schema " + *version + ", this gatehouse reads " +
                              std::to_string(LogStore::latestSchemaVersion()));
  }
  return reader;
}

LogReader::~LogReader() { sqlite3_close(db_); }

Result<RequestPage> LogReader::listRequests(const ListRequestsQuery& query) {
  Shape shape = shapeFor(query.filter);
  SqlQuery q;
  q.sql = std::string("SELECT ") + kRecordColumns + fromClause(shape);
  appendWhere(query.filter, shape, q);
  if (!query.cursor.empty()) {
    int64_t start_ms, seq;
    if (!parseCursor(query.cursor, &start_ms, &seq)) {
      return Status(EINVAL, "bad cursor \"" + query.cursor + "\": pass next_cursor unchanged");
    }
    q.sql += std::string(" AND (") + shape.time_col + ", " + shape.seq_col + ") < (?, ?)";
    q.args.emplace_back(start_ms);
    q.args.emplace_back(seq);
  }
  q.sql += std::string(" ORDER BY ") + shape.time_col + " DESC, " + shape.seq_col + " DESC";
  size_t limit = clampLimit(query.limit);
  appendPage(limit + 1, query.offset, q);  // one extra row says whether a next page exists

  RequestPage page;
  int64_t last_seq = 0;
  std::lock_guard lock(mu_);
  Status s = forEachRow(db_, q, [&](const SqlStmt& row) {
    if (page.records.size() == limit) {
      page.next_cursor = makeCursor(page.records.back().start_ms, last_seq);
      return;
    }
    page.records.push_back(readRecord(row, /*headers=*/false));
    last_seq = row.i64(0);
  });
  if (!s) return s;
  return page;
}

Result<RequestRecord> LogReader::getRequest(std::string_view id, bool with_bodies) {
  std::lock_guard lock(mu_);
  ReadTxn txn(db_);
  SqlStmt s(db_, std::string("SELECT ") + kRecordColumns +
                     ", r.request_headers, r.response_headers FROM requests r WHERE r.id = ?");
  if (!s.status()) return s.status();
  s.bindText(1, id);
  int rc = s.step();
  if (rc == SQLITE_DONE) return Status(ENOENT, "no request " + std::string(id));
  if (rc != SQLITE_ROW) return s.stepStatus(rc, "get request");
  RequestRecord r = readRecord(s, /*headers=*/true);
  if (!with_bodies) return r;

  SqlStmt b(db_,
            "SELECT request, request_size, response, response_size FROM request_bodies "
            "WHERE seq = ?");
  if (!b.status()) return b.status();
  b.bind(1, s.i64(0));
  rc = b.step();
  if (rc == SQLITE_DONE) return r;
  if (rc != SQLITE_ROW) return b.stepStatus(rc, "get bodies");
  for (auto [col, out] : {std::pair{0, &r.request_body}, std::pair{2, &r.response_body}}) {
    auto frame = b.optBlob(col);
    if (!frame) continue;
    auto raw = decompressBody(*frame, b.i64(col + 1));
    if (!raw) return Status(raw.status().code(), "request " + r.id + ": " + raw.status().message());
    *out = std::move(*raw);
  }
  return r;
}

// Usage counts model calls: not the models list, admin calls or requests that never routed.
constexpr const char* kModelCallsOnly =
    " AND r.api_kind IN ('anthropic.messages', 'anthropic.count_tokens', 'openai.chat', "
    "'openai.responses')";

Result<std::vector<UsageRow>> LogReader::usage(const UsageQuery& query) {
  Shape shape = shapeFor(query.filter);
  SqlQuery q;
  q.sql = std::string("SELECT ") + groupBy(query.group_by).key_sql + ", " + kTotalsColumns +
          fromClause(shape);
  // CROSS JOIN keeps requests as the outer loop, so a time window uses requests_time.
  if (query.group_by == UsageGroupBy::kTag) q.sql += " CROSS JOIN request_tags g ON g.seq = r.seq";
  appendWhere(query.filter, shape, q);
  q.sql += kModelCallsOnly;
  // The unary + keeps SQLite from scanning a whole index for its order when a time window would
  // read far fewer rows (there are no statistics to tell it so).
  q.sql += std::string(" GROUP BY +") + groupBy(query.group_by).key_sql + " ORDER BY 1";

  std::vector<UsageRow> rows;
  std::lock_guard lock(mu_);
  Status s = forEachRow(db_, q, [&](const SqlStmt& row) {
    rows.push_back(UsageRow{row.text(0), readTotals(row, 1)});
  });
  if (!s) return s;
  return rows;
}

Result<std::vector<SessionRow>> LogReader::sessions(const SessionsQuery& query) {
  Shape shape = shapeFor(query.filter);
  SqlQuery q;
  q.sql = std::string("SELECT r.session_id, r.user_login, MIN(r.start_ms), MAX(r.start_ms), ") +
          kTotalsColumns + fromClause(shape);
  appendWhere(query.filter, shape, q);
  q.sql += kModelCallsOnly;
  q.sql += " AND r.session_id != '' GROUP BY +r.user_login, +r.session_id ORDER BY 4 DESC, 1, 2";
  appendPage(clampLimit(query.limit), query.offset, q);

  std::vector<SessionRow> rows;
  std::lock_guard lock(mu_);
  Status s = forEachRow(db_, q, [&](const SqlStmt& row) {
    rows.push_back(
        SessionRow{row.text(0), row.text(1), row.i64(2), row.i64(3), readTotals(row, 4)});
  });
  if (!s) return s;
  return rows;
}

}  // namespace gatehouse::proxy
