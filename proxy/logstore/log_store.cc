#include "proxy/logstore/log_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <cerrno>
#include <nlohmann/json.hpp>

#include "proxy/logstore/log_db.h"
#include "proxy/tools/tool_results.h"

namespace gatehouse::proxy {
namespace {

using logstore::compressBody;
using logstore::sqlExec;
using logstore::sqlOpen;
using logstore::sqlQueryText;
using logstore::SqlStmt;

// The schema, one entry per version (PRAGMA user_version). Append only: a released entry never
// changes; LOG_FORMAT.md describes the latest.
const char* const kMigrations[] = {
    // 1: requests, their tags (for exact tag filters; start_ms is copied so that a tag's
    // requests come newest first straight from the index) and their compressed bodies.
    R"sql(
    CREATE TABLE requests (
      seq INTEGER PRIMARY KEY,
      id TEXT NOT NULL UNIQUE,
      start_ms INTEGER NOT NULL,
      node_id TEXT NOT NULL,
      node_name TEXT NOT NULL,
      user_login TEXT NOT NULL,
      user_display_name TEXT NOT NULL,
      groups TEXT NOT NULL,
      tags TEXT NOT NULL,
      session_id TEXT NOT NULL,
      user_agent TEXT NOT NULL,
      provider TEXT NOT NULL,
      api_kind TEXT NOT NULL,
      model TEXT NOT NULL,
      method TEXT NOT NULL,
      path TEXT NOT NULL,
      status INTEGER NOT NULL,
      error TEXT NOT NULL,
      latency_ms INTEGER NOT NULL,
      ttfb_ms INTEGER,
      streamed INTEGER NOT NULL,
      partial INTEGER NOT NULL,
      input_tokens INTEGER,
      output_tokens INTEGER,
      cache_read_tokens INTEGER,
      cache_write_5m_tokens INTEGER,
      cache_write_1h_tokens INTEGER,
      reasoning_tokens INTEGER,
      cost_nanodollars INTEGER,
      request_headers TEXT NOT NULL,
      response_headers TEXT NOT NULL,
      bodies_dropped INTEGER NOT NULL);
    CREATE INDEX requests_time ON requests(start_ms);
    CREATE INDEX requests_user ON requests(user_login, start_ms);
    CREATE INDEX requests_model ON requests(model, start_ms);
    CREATE INDEX requests_status ON requests(status, start_ms);
    CREATE INDEX requests_session ON requests(session_id, start_ms);
    CREATE TABLE request_tags (
      seq INTEGER NOT NULL,
      tag TEXT NOT NULL,
      start_ms INTEGER NOT NULL,
      PRIMARY KEY (seq, tag)) WITHOUT ROWID;
    CREATE INDEX request_tags_tag ON request_tags(tag, start_ms);
    CREATE TABLE request_bodies (
      seq INTEGER PRIMARY KEY,
      request BLOB,
      request_size INTEGER,
      response BLOB,
      response_size INTEGER);
    )sql",
    // 2: tool calls, one row per (node, call id), with their parsed commands one row each (for
    // the command-prefix filter). The result columns fill in when a later request carries it.
    R"sql(
    CREATE TABLE tool_calls (
      id INTEGER PRIMARY KEY,
      node_id TEXT NOT NULL,
      call_id TEXT NOT NULL,
      user_login TEXT NOT NULL,
      tags TEXT NOT NULL,
      session_id TEXT NOT NULL,
      request_id TEXT NOT NULL,
      time_ms INTEGER NOT NULL,
      name TEXT NOT NULL,
      type TEXT NOT NULL,
      source TEXT NOT NULL,
      mcp_server TEXT NOT NULL,
      mcp_tool TEXT NOT NULL,
      arguments TEXT NOT NULL,
      args_state TEXT NOT NULL,
      command TEXT NOT NULL,
      commands TEXT NOT NULL,
      shell_ok INTEGER NOT NULL,
      target TEXT NOT NULL,
      result_status TEXT NOT NULL,
      result_size INTEGER,
      result_request_id TEXT,
      UNIQUE (node_id, call_id));
    CREATE INDEX tool_calls_time ON tool_calls(time_ms);
    CREATE INDEX tool_calls_user ON tool_calls(user_login, time_ms);
    CREATE INDEX tool_calls_type ON tool_calls(type, time_ms);
    CREATE INDEX tool_calls_session ON tool_calls(session_id, time_ms);
    CREATE TABLE tool_commands (
      call INTEGER NOT NULL,
      n INTEGER NOT NULL,
      line TEXT NOT NULL,
      PRIMARY KEY (call, n)) WITHOUT ROWID;
    CREATE INDEX tool_commands_line ON tool_commands(line);
    )sql",
    // 3: the guardrail rules each tool call matched.
    R"sql(
    ALTER TABLE tool_calls ADD COLUMN guardrail TEXT NOT NULL DEFAULT '[]';
    )sql",
    // 4: what the pre_request hook did (proxy/hooks/HOOKS.md).
    R"sql(
    ALTER TABLE requests ADD COLUMN hook TEXT NOT NULL DEFAULT '';
    )sql",
};

constexpr const char* kInsertToolCall =
    "INSERT OR IGNORE INTO tool_calls (node_id, call_id, user_login, tags, session_id, "
    "request_id, time_ms, name, type, source, mcp_server, mcp_tool, arguments, args_state, "
    "command, commands, shell_ok, target, result_status, guardrail) VALUES (?1, ?2, ?3, ?4, ?5, "
    "?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, 'none', ?19)";

// A result is applied once: later turns repeat it unchanged.
constexpr const char* kApplyToolResult =
    "UPDATE tool_calls SET result_status = ?1, result_size = ?2, result_request_id = ?3 "
    "WHERE node_id = ?4 AND call_id = ?5 AND result_request_id IS NULL";

constexpr const char* kInsertRequest =
    "INSERT INTO requests (id, start_ms, node_id, node_name, user_login, user_display_name, "
    "groups, tags, session_id, user_agent, provider, api_kind, model, method, path, status, "
    "error, latency_ms, ttfb_ms, streamed, partial, input_tokens, output_tokens, "
    "cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, reasoning_tokens, "
    "cost_nanodollars, request_headers, response_headers, bodies_dropped, hook) VALUES (?1, ?2, "
    "?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, "
    "?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32)";

// Invalid UTF-8 in a header value becomes U+FFFD rather than failing the whole record.
std::string jsonText(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// `v` as a JSON string, exactly as jsonText() would write it: printable ASCII other than `"` and
// `\` is written as it is (the common case for headers); anything else goes through nlohmann's
// serializer (escapes, UTF-8 checks, invalid bytes replaced).
void appendJsonString(std::string& out, std::string_view v) {
  bool plain = std::all_of(v.begin(), v.end(),
                           [](char c) { return c >= 0x20 && c <= 0x7e && c != '"' && c != '\\'; });
  if (!plain) {
    out += jsonText(nlohmann::json(std::string(v)));
    return;
  }
  out += '"';
  out += v;
  out += '"';
}

// A JSON array of strings (groups, tags), as jsonText() would write it.
std::string stringsJson(const std::vector<std::string>& items) {
  std::string out = "[";
  for (const std::string& v : items) {
    if (out.size() > 1) out += ',';
    appendJsonString(out, v);
  }
  out += ']';
  return out;
}

// Redaction happens here, on the way to disk, whatever the caller did before. Written without
// building a JSON document: this runs for every logged request (twice).
std::string headersJson(const std::vector<RecordHeader>& headers) {
  std::string out = "[";
  for (const auto& h : headers) {
    if (out.size() > 1) out += ',';
    out += '[';
    appendJsonString(out, h.name);
    out += ',';
    appendJsonString(out, isRedactedHeader(h.name) ? std::string_view(kRedacted) : h.value);
    out += ']';
  }
  out += ']';
  return out;
}

// What insert() writes for one record, prepared before the transaction so that compression does
// not hold the write lock.
struct EncodedRecord {
  std::string groups, tags, request_headers, response_headers;
  std::optional<std::string> request_body, response_body;
  std::vector<ToolResultRecord> tool_results;  // the record's and those read from its source
};

Result<EncodedRecord> encode(const RequestRecord& r, int zstd_level) {
  EncodedRecord e;
  e.groups = stringsJson(r.identity.groups);
  e.tags = stringsJson(r.identity.tags);
  e.request_headers = headersJson(r.request_headers);
  e.response_headers = headersJson(r.response_headers);
  if (r.request_body) {
    auto z = compressBody(*r.request_body, zstd_level);
    if (!z) return z.status();
    e.request_body = std::move(*z);
  }
  if (r.response_body) {
    auto z = compressBody(*r.response_body, zstd_level);
    if (!z) return z.status();
    e.response_body = std::move(*z);
  }
  e.tool_results = r.tool_results;
  if (r.tool_result_source) {
    auto kind = tools::parseApiKindName(r.tool_result_source->api_kind);
    if (kind) {
      const ToolResultSource& src = *r.tool_result_source;
      std::string_view body = src.body;
      if (src.in_request_body) body = r.request_body ? std::string_view(*r.request_body) : "";
      for (const auto& t : tools::extractToolResults(*kind, body)) {
        e.tool_results.push_back({t.call_id, std::string(tools::toString(t.status)), t.size});
      }
    }
  }
  return e;
}

void bindRequest(SqlStmt& s, const RequestRecord& r, const EncodedRecord& e) {
  const auto& who = r.identity;
  s.bindText(1, r.id).bind(2, r.start_ms).bindText(3, who.node_id).bindText(4, who.node_name);
  s.bindText(5, who.user_login).bindText(6, who.user_display_name).bindText(7, e.groups);
  s.bindText(8, e.tags).bindText(9, r.session_id).bindText(10, r.user_agent);
  s.bindText(11, r.provider).bindText(12, r.api_kind).bindText(13, r.model);
  s.bindText(14, r.method).bindText(15, r.path).bind(16, int64_t{r.status});
  s.bindText(17, r.error).bind(18, r.latency_ms).bind(19, r.ttfb_ms);
  s.bind(20, int64_t{r.streamed}).bind(21, int64_t{r.partial});
  const auto& t = r.tokens;
  s.bind(22, t.input).bind(23, t.output).bind(24, t.cache_read).bind(25, t.cache_write_5m);
  s.bind(26, t.cache_write_1h).bind(27, t.reasoning).bind(28, r.cost_nanodollars);
  s.bindText(29, e.request_headers).bindText(30, e.response_headers);
  s.bind(31, int64_t{r.bodies_dropped}).bindText(32, r.hook);
}

// The record's tool calls (skipping ids this node already has) and the results it carries.
Status insertTools(const RequestRecord& r, const EncodedRecord& e, SqlStmt& call, SqlStmt& command,
                   SqlStmt& result) {
  const auto& who = r.identity;
  for (const ToolCallRecord& c : r.tool_calls) {
    call.reset();
    call.bindText(1, who.node_id).bindText(2, c.call_id).bindText(3, who.user_login);
    call.bindText(4, e.tags).bindText(5, r.session_id).bindText(6, r.id).bind(7, r.start_ms);
    call.bindText(8, c.name).bindText(9, c.type).bindText(10, c.source);
    call.bindText(11, c.mcp_server).bindText(12, c.mcp_tool).bindText(13, c.arguments);
    call.bindText(14, c.args_state).bindText(15, c.command).bindText(16, c.commands_json);
    call.bind(17, int64_t{c.shell_ok}).bindText(18, c.target).bindText(19, c.guardrail);
    if (Status s = call.run("insert tool call " + c.call_id); !s) return s;
    if (sqlite3_changes(call.db()) == 0) continue;  // seen in an earlier turn
    int64_t id = sqlite3_last_insert_rowid(call.db());
    for (size_t n = 0; n < c.command_lines.size(); ++n) {
      command.reset();
      command.bind(1, id).bind(2, static_cast<int64_t>(n)).bindText(3, c.command_lines[n]);
      if (Status s = command.run("insert tool command"); !s) return s;
    }
  }
  for (const ToolResultRecord& t : e.tool_results) {
    result.reset();
    result.bindText(1, t.status).bind(2, t.size).bindText(3, r.id);
    result.bindText(4, who.node_id).bindText(5, t.call_id);
    if (Status s = result.run("apply tool result " + t.call_id); !s) return s;
  }
  return Status::ok();
}

void bindBody(SqlStmt& s, int i, const std::optional<std::string>& frame,
              const std::optional<std::string>& raw) {
  if (frame) {
    s.bindBlob(i, *frame).bind(i + 1, static_cast<int64_t>(raw->size()));
  } else {
    s.bindNull(i).bindNull(i + 1);
  }
}

// A transaction that rolls back unless committed.
class WriteTxn {
 public:
  explicit WriteTxn(sqlite3* db) : db_(db) {
    // IMMEDIATE takes the write lock now, so a busy database fails here and not halfway.
    begin_ = sqlExec(db_, "BEGIN IMMEDIATE");
  }
  ~WriteTxn() {
    if (begin_ && !committed_) sqlExec(db_, "ROLLBACK");
  }
  const Status& begin() const { return begin_; }
  Status commit() {
    Status s = sqlExec(db_, "COMMIT");
    committed_ = s.isOk();
    return s;
  }

 private:
  sqlite3* db_;
  Status begin_;
  bool committed_ = false;
};

}  // namespace

Result<std::unique_ptr<LogStore>> LogStore::open(const std::string& path,
                                                 const LogStoreOptions& options) {
  // The reader opens its own connection to the same file, so there is no in-memory variant.
  if (path.empty() || path == ":memory:") {
    return Status(EINVAL, "the request log needs a file path (got \"" + path + "\")");
  }
  auto db = sqlOpen(path, /*create=*/true, options.busy_timeout_ms);
  if (!db) return db.status();
  std::unique_ptr<LogStore> store(new LogStore(*db, path, options));
  if (Status s = store->configure(); !s) return Status(s.code(), path + ": " + s.message());
  if (Status s = store->migrate(); !s) return Status(s.code(), path + ": " + s.message());
  return store;
}

LogStore::LogStore(sqlite3* db, std::string path, const LogStoreOptions& options)
    : db_(db), path_(std::move(path)), options_(options) {}

LogStore::~LogStore() {
  insert_stmts_.reset();  // statements first: sqlite3_close refuses while any is unfinalized
  sqlite3_close(db_);
}

struct LogStore::InsertStatements {
  explicit InsertStatements(sqlite3* db)
      : req(db, kInsertRequest),
        tag(db, "INSERT OR IGNORE INTO request_tags (seq, tag, start_ms) VALUES (?1, ?2, ?3)"),
        body(db,
             "INSERT INTO request_bodies (seq, request, request_size, response, response_size) "
             "VALUES (?1, ?2, ?3, ?4, ?5)"),
        call(db, kInsertToolCall),
        command(db, "INSERT OR IGNORE INTO tool_commands (call, n, line) VALUES (?1, ?2, ?3)"),
        result(db, kApplyToolResult) {
    // insert() binds members of the records and their encodings, which outlive every step.
    for (SqlStmt* s : {&req, &tag, &body, &call, &command, &result}) s->borrowValues();
  }
  Status status() const {
    for (const SqlStmt* s : {&req, &tag, &body, &call, &command, &result}) {
      if (!s->status()) return s->status();
    }
    return Status::ok();
  }
  void reset() {
    for (SqlStmt* s : {&req, &tag, &body, &call, &command, &result}) s->reset();
  }
  SqlStmt req, tag, body, call, command, result;
};

Status LogStore::configure() {
  // auto_vacuum only takes effect before the first table exists, so it comes first; on an
  // existing database it is a no-op.
  if (Status s = sqlExec(db_, "PRAGMA auto_vacuum=INCREMENTAL"); !s) return s;
  auto mode = sqlQueryText(db_, "PRAGMA journal_mode=WAL");
  if (!mode) return mode.status();
  if (*mode != "wal")
    return Status(EIO, "cannot switch the request log to WAL (got " + *mode + ")");
  std::string pragmas =
      std::string("PRAGMA synchronous=") + (options_.synchronous_full ? "FULL" : "NORMAL") +
      "; PRAGMA journal_size_limit=" + std::to_string(options_.journal_size_limit) + ";";
  return sqlExec(db_, pragmas);
}

int LogStore::latestSchemaVersion() { return static_cast<int>(std::size(kMigrations)); }

int LogStore::schemaVersion() const {
  auto v = sqlQueryText(db_, "PRAGMA user_version");
  return v ? std::stoi(*v) : -1;
}

Status LogStore::migrate() {
  int have = schemaVersion();
  if (have < 0) return Status(EIO, "cannot read the schema version");
  if (have > latestSchemaVersion()) {
    return Status(EINVAL, "request log schema " + std::to_string(have) +
                              " is newer than this gatehouse (" +
                              std::to_string(latestSchemaVersion()) + "); upgrade gatehouse");
  }
  for (int v = have; v < latestSchemaVersion(); ++v) {
    WriteTxn txn(db_);
    if (!txn.begin()) return txn.begin();
    std::string sql = std::string(kMigrations[v]) + "PRAGMA user_version=" + std::to_string(v + 1);
    Status s = sqlExec(db_, sql);
    if (s) s = txn.commit();
    if (!s) {
      return Status(s.code(),
                    "migration to schema " + std::to_string(v + 1) + " failed: " + s.message());
    }
  }
  return Status::ok();
}

Result<InsertResult> LogStore::insert(const std::vector<RequestRecord>& records) {
  std::vector<EncodedRecord> encoded;
  encoded.reserve(records.size());
  for (const auto& r : records) {
    auto e = encode(r, options_.zstd_level);
    if (!e) return e.status();
    encoded.push_back(std::move(*e));
  }

  if (!insert_stmts_) {
    auto stmts = std::make_unique<InsertStatements>(db_);
    if (Status s = stmts->status(); !s) return s;
    insert_stmts_ = std::move(stmts);
  }
  InsertStatements& st = *insert_stmts_;
  WriteTxn txn(db_);
  if (!txn.begin()) return txn.begin();
  // Reset on the way out (before a rollback): a statement left mid-step after an error would
  // keep the database busy.
  struct ResetAfter {
    InsertStatements& st;
    ~ResetAfter() { st.reset(); }
  } reset_after{st};
  SqlStmt &req = st.req, &tag = st.tag, &body = st.body;

  InsertResult inserted;
  for (size_t i = 0; i < records.size(); ++i) {
    const RequestRecord& r = records[i];
    const EncodedRecord& e = encoded[i];
    req.reset();
    bindRequest(req, r, e);
    int rc = req.step();
    // A duplicate id fails only this statement; the transaction and the batch go on.
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
      ++inserted.rejected;
      continue;
    }
    if (rc != SQLITE_DONE) return req.stepStatus(rc, "insert request " + r.id);
    int64_t seq = sqlite3_last_insert_rowid(db_);
    for (const auto& t : r.identity.tags) {
      tag.reset();
      tag.bind(1, seq).bindText(2, t).bind(3, r.start_ms);
      if (Status s = tag.run("insert tag"); !s) return s;
    }
    if (e.request_body || e.response_body) {
      body.reset();
      body.bind(1, seq);
      bindBody(body, 2, e.request_body, r.request_body);
      bindBody(body, 4, e.response_body, r.response_body);
      if (Status s = body.run("insert body"); !s) return s;
    }
    if (Status s = insertTools(r, e, st.call, st.command, st.result); !s) return s;
    ++inserted.inserted;
  }
  if (Status s = txn.commit(); !s) return s;
  return inserted;
}

Result<ExpireResult> LogStore::expireBefore(int64_t cutoff_ms, size_t max_rows) {
  WriteTxn txn(db_);
  if (!txn.begin()) return txn.begin();
  SqlStmt pick(db_, "SELECT seq FROM requests WHERE start_ms < ?1 ORDER BY start_ms LIMIT ?2");
  if (!pick.status()) return pick.status();
  pick.bind(1, cutoff_ms).bind(2, static_cast<int64_t>(max_rows));
  std::vector<int64_t> seqs;
  int rc;
  while ((rc = pick.step()) == SQLITE_ROW) seqs.push_back(pick.i64(0));
  if (rc != SQLITE_DONE) return pick.stepStatus(rc, "select expired");

  SqlStmt del_body(db_, "DELETE FROM request_bodies WHERE seq = ?1");
  SqlStmt del_tags(db_, "DELETE FROM request_tags WHERE seq = ?1");
  SqlStmt del_req(db_, "DELETE FROM requests WHERE seq = ?1");
  for (int64_t seq : seqs) {
    for (SqlStmt* s : {&del_body, &del_tags, &del_req}) {
      s->reset();
      s->bind(1, seq);
      if (Status st = s->run("expire"); !st) return st;
    }
  }
  // Tool calls expire on their own time, in the same bounded step.
  SqlStmt pick_calls(db_, "SELECT id FROM tool_calls WHERE time_ms < ?1 ORDER BY time_ms LIMIT ?2");
  if (!pick_calls.status()) return pick_calls.status();
  pick_calls.bind(1, cutoff_ms).bind(2, static_cast<int64_t>(max_rows));
  std::vector<int64_t> calls;
  while ((rc = pick_calls.step()) == SQLITE_ROW) calls.push_back(pick_calls.i64(0));
  if (rc != SQLITE_DONE) return pick_calls.stepStatus(rc, "select expired tool calls");
  SqlStmt del_commands(db_, "DELETE FROM tool_commands WHERE call = ?1");
  SqlStmt del_call(db_, "DELETE FROM tool_calls WHERE id = ?1");
  for (int64_t id : calls) {
    for (SqlStmt* s : {&del_commands, &del_call}) {
      s->reset();
      s->bind(1, id);
      if (Status st = s->run("expire tool call"); !st) return st;
    }
  }
  if (Status s = txn.commit(); !s) return s;
  bool more = max_rows > 0 && (seqs.size() == max_rows || calls.size() == max_rows);
  return ExpireResult{seqs.size(), more};
}

Status LogStore::incrementalVacuum(int max_pages) {
  return sqlExec(db_, "PRAGMA incremental_vacuum(" + std::to_string(max_pages) + ")");
}

}  // namespace gatehouse::proxy
