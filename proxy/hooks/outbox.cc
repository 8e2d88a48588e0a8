// The webhook outbox. See outbox.h and HOOKS.md "Outbox".
#include "proxy/hooks/outbox.h"

#include <algorithm>

#include "proxy/logstore/log_db.h"

namespace gatehouse::proxy {
namespace {

using logstore::sqlExec;
using logstore::SqlStmt;

constexpr const char* kSchema = R"sql(
  CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    url TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    dead INTEGER NOT NULL DEFAULT 0,
    UNIQUE (event_id, url));
  CREATE INDEX IF NOT EXISTS outbox_due ON outbox(dead, next_attempt_ms);
)sql";

constexpr const char* kColumns =
    "SELECT seq, event_id, url, kind, created_ms, payload, attempts, next_attempt_ms, "
    "last_error, dead FROM outbox ";

// "?3, ?4, …" for `n` URLs bound from index `first`.
std::string placeholders(size_t first, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += (i ? ", ?" : "?") + std::to_string(first + i);
  return s;
}

Status runOne(sqlite3* db, const char* sql, int64_t a, std::optional<int64_t> b, const char* what) {
  SqlStmt s(db, sql);
  if (!s.status()) return s.status();
  s.bind(1, a);
  if (b) s.bind(2, *b);
  return s.run(what);
}

}  // namespace

int64_t backoffMs(int64_t attempts, int64_t base_ms, int64_t cap_ms) {
  int64_t d = base_ms;
  for (int64_t i = 1; i < attempts && d < cap_ms; ++i) d *= 2;
  return std::min(d, cap_ms);
}

Result<std::unique_ptr<Outbox>> Outbox::open(const std::string& path) {
  auto db = logstore::sqlOpen(path, /*create=*/true, /*busy_timeout_ms=*/5000);
  if (!db) return Status(db.status().code(), "webhook outbox " + db.status().message());
  std::unique_ptr<Outbox> box(new Outbox(*db));
  auto version = logstore::sqlQueryText(*db, "PRAGMA user_version");
  if (!version) return version.status();
  if (*version != "0" && *version != std::to_string(kOutboxFormatVersion)) {
    return Status(EINVAL, path + ": webhook outbox version " + *version +
                              ", this gatehouse reads " + std::to_string(kOutboxFormatVersion) +
                              "; upgrade gatehouse");
  }
  Status s = sqlExec(*db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
  if (s)
    s = sqlExec(*db, std::string(kSchema) +
                         "PRAGMA user_version=" + std::to_string(kOutboxFormatVersion) + ";");
  if (!s) return Status(s.code(), path + ": " + s.message());
  return box;
}

Outbox::~Outbox() { sqlite3_close(db_); }

Status Outbox::add(const std::vector<OutboxRow>& rows) {
  if (rows.empty()) return Status::ok();
  if (Status s = sqlExec(db_, "BEGIN IMMEDIATE"); !s) return s;
  SqlStmt ins(db_,
              "INSERT OR IGNORE INTO outbox (event_id, url, kind, created_ms, payload, "
              "next_attempt_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
  Status st = ins.status();
  for (size_t i = 0; st && i < rows.size(); ++i) {
    const OutboxRow& r = rows[i];
    ins.reset();
    ins.bindText(1, r.event_id).bindText(2, r.url).bindText(3, r.kind).bind(4, r.created_ms);
    ins.bindText(5, r.payload).bind(6, r.next_attempt_ms);
    st = ins.run("add webhook event");
  }
  if (!st) {
    sqlExec(db_, "ROLLBACK");
    return st;
  }
  return sqlExec(db_, "COMMIT");
}

Result<std::vector<OutboxRow>> Outbox::select(const std::string& where_sql, int64_t now_ms,
                                              const std::vector<std::string>& urls, size_t limit) {
  std::vector<OutboxRow> out;
  if (urls.empty() && !where_sql.empty()) return out;
  std::string sql = std::string(kColumns) + where_sql + " ORDER BY seq";
  if (limit > 0) sql += " LIMIT " + std::to_string(limit);
  SqlStmt s(db_, sql);
  if (!s.status()) return s.status();
  if (!where_sql.empty()) {
    s.bind(1, now_ms);
    for (size_t i = 0; i < urls.size(); ++i) s.bindText(static_cast<int>(i + 2), urls[i]);
  }
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    OutboxRow r;
    r.seq = s.i64(0);
    r.event_id = s.text(1);
    r.url = s.text(2);
    r.kind = s.text(3);
    r.created_ms = s.i64(4);
    r.payload = s.text(5);
    r.attempts = s.i64(6);
    r.next_attempt_ms = s.i64(7);
    r.last_error = s.text(8);
    r.dead = s.i64(9) != 0;
    out.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return s.stepStatus(rc, "read webhook outbox");
  return out;
}

Result<std::vector<OutboxRow>> Outbox::due(int64_t now_ms, const std::vector<std::string>& urls,
                                           size_t limit) {
  return select(
      "WHERE dead = 0 AND next_attempt_ms <= ?1 AND url IN (" + placeholders(2, urls.size()) + ")",
      now_ms, urls, limit);
}

Result<std::optional<int64_t>> Outbox::nextDue(const std::vector<std::string>& urls) {
  std::optional<int64_t> out;
  if (urls.empty()) return out;
  SqlStmt s(db_, "SELECT MIN(next_attempt_ms) FROM outbox WHERE dead = 0 AND url IN (" +
                     placeholders(1, urls.size()) + ")");
  if (!s.status()) return s.status();
  for (size_t i = 0; i < urls.size(); ++i) s.bindText(static_cast<int>(i + 1), urls[i]);
  int rc = s.step();
  if (rc == SQLITE_ROW) return s.optI64(0);
  if (rc != SQLITE_DONE) return s.stepStatus(rc, "read webhook outbox");
  return out;
}

Status Outbox::lease(int64_t seq, int64_t until_ms) {
  return runOne(db_, "UPDATE outbox SET next_attempt_ms = ?2 WHERE seq = ?1", seq, until_ms,
                "lease webhook event");
}

Status Outbox::delivered(int64_t seq) {
  return runOne(db_, "DELETE FROM outbox WHERE seq = ?1", seq, std::nullopt,
                "delete delivered webhook event");
}

Status Outbox::failed(int64_t seq, int64_t attempts, int64_t next_ms, const std::string& error,
                      bool dead) {
  SqlStmt s(db_,
            "UPDATE outbox SET attempts = ?2, next_attempt_ms = ?3, last_error = ?4, dead = ?5 "
            "WHERE seq = ?1");
  if (!s.status()) return s.status();
  s.bind(1, seq).bind(2, attempts).bind(3, next_ms).bindText(4, error.substr(0, 1000));
  s.bind(5, int64_t{dead});
  return s.run("record webhook failure");
}

Result<std::vector<OutboxRow>> Outbox::all() { return select("", 0, {}, 0); }

}  // namespace gatehouse::proxy
