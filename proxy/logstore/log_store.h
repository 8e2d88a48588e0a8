// LogStore: the write side of the gateway's request log, one SQLite database file (LOG_FORMAT.md
// is the spec of its schema). It creates and migrates the schema, inserts batches of
// RequestRecords in one transaction each, and expires old records in bounded steps.
//
// Thread safety: a LogStore is used by one thread at a time; in the gateway that is the
// LogWriter's thread, which owns it. Queries go through a LogReader, a separate connection that
// may be used from any thread while this one writes (WAL lets readers and the writer proceed
// together).
//
// Durability: WAL with synchronous=NORMAL by default. A committed transaction is in the WAL file
// in the kernel's page cache when insert() returns, so it survives kill -9 of the gateway (the
// requirement: "kill -9 after N completed requests: all N records are there after restart").
// It may be lost on power loss or a kernel crash, and never corrupts the database. FULL
// (`synchronous_full`) adds an fsync per commit for deployments that need power-loss durability;
// it costs a few ms per batch on typical disks.
//
// Errors are values: every call returns a Status or Result; nothing throws.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "proxy/logstore/record.h"
#include "wg/status.h"

struct sqlite3;

namespace gatehouse::proxy {

struct LogStoreOptions {
  bool synchronous_full = false;  // see "Durability" above
  int zstd_level = 3;
  // How long a write waits for another connection's write lock before failing with EBUSY (the
  // writer retries; a long wait here only delays shutdown).
  int busy_timeout_ms = 250;
  // WAL file size kept after a checkpoint; bodies make it grow past SQLite's 1000-page trigger.
  int64_t journal_size_limit = 64ll << 20;
};

struct InsertResult {
  size_t inserted = 0;
  // Records whose id was already in the store (a caller bug). The rest of the batch is written.
  size_t rejected = 0;
};

struct ExpireResult {
  size_t deleted = 0;
  bool more = false;  // the step hit its row bound; more expired records remain
};

class LogStore {
 public:
  // Opens `path`, creating it 0600 with auto_vacuum=INCREMENTAL when new, and migrates the
  // schema. EINVAL when the file's schema is newer than this binary, or for ":memory:" (the
  // LogReader needs a file to open).
  static Result<std::unique_ptr<LogStore>> open(const std::string& path,
                                                const LogStoreOptions& options = {});
  ~LogStore();
  LogStore(const LogStore&) = delete;
  LogStore& operator=(const LogStore&) = delete;

  static int latestSchemaVersion();
  int schemaVersion() const;
  const std::string& path() const { return path_; }

  // Writes `records` in one transaction: credential headers redacted, bodies zstd-compressed into
  // request_bodies. On error nothing of the batch is written; EBUSY means another connection
  // holds the write lock (retry later).
  Result<InsertResult> insert(const std::vector<RequestRecord>& records);

  // Deletes at most `max_rows` of the oldest records that started before `cutoff_ms`, with their
  // tags and bodies, in one transaction. Bounded so that expiry never holds the write lock long.
  Result<ExpireResult> expireBefore(int64_t cutoff_ms, size_t max_rows);

  // Returns up to `max_pages` free pages to the file system (PRAGMA incremental_vacuum): the
  // database shrinks a little after each expiry step instead of in one VACUUM.
  Status incrementalVacuum(int max_pages);

 private:
  LogStore(sqlite3* db, std::string path, const LogStoreOptions& options);
  Status configure();
  Status migrate();

  // insert()'s statements, prepared at the first insert and reused (finalized before close).
  struct InsertStatements;
  std::unique_ptr<InsertStatements> insert_stmts_;
  sqlite3* db_;
  std::string path_;
  LogStoreOptions options_;
};

}  // namespace gatehouse::proxy
