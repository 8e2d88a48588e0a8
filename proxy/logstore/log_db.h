// The log database's low-level pieces, shared by LogStore (writes) and LogReader (queries): a
// prepared statement that finalizes itself, nullable binds and columns, SQLite result codes as
// Status values, opening the file with the right mode, the zstd frames bodies are stored in, and
// the text helpers the JSON output needs. Internal to proxy/logstore.
//
// Thread safety: a SqlStmt belongs to the thread using its connection, like the connection; the
// free functions share no state.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "wg/status.h"

namespace gatehouse::proxy::logstore {

class SqlStmt {
 public:
  SqlStmt(sqlite3* db, std::string_view sql);
  ~SqlStmt();
  SqlStmt(const SqlStmt&) = delete;
  SqlStmt& operator=(const SqlStmt&) = delete;

  // The prepare error (e.g. a syntax error), ok when the statement is usable.
  const Status& status() const { return status_; }

  SqlStmt& bind(int i, int64_t v);
  SqlStmt& bind(int i, std::optional<int64_t> v);  // NULL for nullopt
  SqlStmt& bindText(int i, std::string_view v);
  SqlStmt& bindBlob(int i, std::string_view v);
  SqlStmt& bindNull(int i);
  // Text and blobs bound from now on are not copied: each must stay alive and unchanged until the
  // statement has been stepped and reset (which clears the bindings). For the log writer's
  // insert statements, whose values are the batch being written.
  void borrowValues() { copy_values_ = false; }

  // SQLITE_ROW, SQLITE_DONE or an error code (then see stepStatus).
  int step();
  // Steps to completion: ok on SQLITE_DONE, the error otherwise.
  Status run(std::string_view what);
  Status stepStatus(int rc, std::string_view what) const;
  // Rewinds for another run and clears the bindings.
  void reset();

  bool isNull(int c) const;
  int64_t i64(int c) const;
  std::optional<int64_t> optI64(int c) const;
  std::string text(int c) const;
  std::optional<std::string> optBlob(int c) const;
  sqlite3* db() const { return db_; }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  Status status_;
  bool copy_values_ = true;
};

// SQL text with its `?` parameters, bound in the order they appear (the queries build WHERE
// clauses from optional filters).
struct SqlQuery {
  std::string sql;
  std::vector<std::variant<int64_t, std::string>> args;

  void bindTo(SqlStmt& s) const;
};

// Appends " LIMIT ? OFFSET ?".
void appendPage(size_t limit, size_t offset, SqlQuery& q);
// Page sizes are 1..1000.
size_t clampLimit(size_t limit);

// A page cursor is "<time_ms>.<row id>" of the last row of a page: opaque to clients, stable
// while rows are inserted (new rows sort before it) or expired (old rows sort after it).
std::string makeCursor(int64_t time_ms, int64_t id);
bool parseCursor(std::string_view cursor, int64_t* time_ms, int64_t* id);

// Runs `q`, calling `row` for each result row; the step error, if any, as a Status.
template <typename F>
Status forEachRow(sqlite3* db, const SqlQuery& q, F&& row) {
  SqlStmt s(db, q.sql);
  if (!s.status()) return s.status();
  q.bindTo(s);
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) row(s);
  return rc == SQLITE_DONE ? Status::ok() : s.stepStatus(rc, "query");
}

// A Status for SQLite result code `rc` on `db`: "what: sqlite message". Codes map to errno
// values: EBUSY (busy or locked: another connection holds the write lock), ENOSPC (disk full),
// EEXIST (constraint), EILSEQ (corrupt or not a database), EIO otherwise.
Status sqlStatus(sqlite3* db, int rc, std::string_view what);

// Runs SQL that returns no rows (may be several statements).
Status sqlExec(sqlite3* db, const std::string& sql);

// Runs a one-value query (PRAGMA x) and returns the value as text; empty when it has no rows.
Result<std::string> sqlQueryText(sqlite3* db, const std::string& sql);

// Opens `path` read-write. With `create`, the file is first created 0600 (SQLite gives its -wal
// and -shm files the same mode): request logs hold prompts, so only the gateway user may read
// them. The caller owns the handle (sqlite3_close).
Result<sqlite3*> sqlOpen(const std::string& path, bool create, int busy_timeout_ms);

// Bodies at rest: one zstd frame per body (LOG_FORMAT.md "Bodies"). The frame records the
// content size and the store keeps the size beside it, so decompression allocates once and
// rejects a frame that does not match.
// A zstd frame of `raw` at `level` (1..19; 3 is zstd's default and a good speed/ratio point for
// JSON). Never fails for in-memory input short of allocation failure, which is reported.
Result<std::string> compressBody(std::string_view raw, int level);

// The bytes of `frame`, which must decode to exactly `expected_size` bytes. EILSEQ when the
// frame is corrupt or its size disagrees (a damaged row, never a crash).
Result<std::string> decompressBody(std::string_view frame, int64_t expected_size);

// Text from the wire (user agents, paths, header values, bodies) is bytes; JSON wants UTF-8.
bool isValidUtf8(std::string_view bytes);
// `bytes` with every byte that starts no well-formed UTF-8 sequence replaced by U+FFFD.
std::string toValidUtf8(std::string_view bytes);
std::string base64Encode(std::string_view bytes);  // RFC 4648, padded
// The strings of a JSON array (list columns: groups, tags); non-strings and bad JSON are skipped.
std::vector<std::string> stringsFromJson(const std::string& text);

}  // namespace gatehouse::proxy::logstore
