// SQLite quota store: the in-memory ledger is authoritative; a writer thread copies the buckets
// changed since its last pass (under a mutex held only for the copy) and upserts them in one
// transaction every flush interval, and once more at close(). Requests never wait for SQLite.
//
// Durability: a clean close() writes every level. A crash loses at most the last interval of
// changes; reservations persisted while their requests were in flight stay charged at their worst
// case (never refunded by a settle that did not happen): restart errs on the side of the budget.
//
// Table (version 2; version 1 had no debt column, added on open):
//   quota_buckets(key TEXT PRIMARY KEY, spec TEXT, level INTEGER, refill_rem INTEGER,
//                 updated_ms INTEGER, capacity_set INTEGER, debt INTEGER)
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "proxy/logstore/log_db.h"
#include "proxy/quota/store.h"

namespace gatehouse::proxy {
namespace {

using logstore::SqlStmt;

class SqliteQuotaStore final : public MemoryQuotaStore {
 public:
  SqliteQuotaStore(sqlite3* db, int64_t interval_ms) : db_(db), interval_ms_(interval_ms) {}
  ~SqliteQuotaStore() override {
    close();
    sqlite3_close(db_);
  }

  Status load() {
    Status st = logstore::sqlExec(db_,
                                  "CREATE TABLE IF NOT EXISTS quota_buckets(key TEXT PRIMARY KEY, "
                                  "spec TEXT NOT NULL, level INTEGER NOT NULL, refill_rem INTEGER "
                                  "NOT NULL, updated_ms INTEGER NOT NULL, capacity_set INTEGER "
                                  "NOT NULL, debt INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID");
    if (!st) return st;
    if (!hasDebtColumn()) {
      st = logstore::sqlExec(
          db_, "ALTER TABLE quota_buckets ADD COLUMN debt INTEGER NOT NULL DEFAULT 0");
      if (!st) return st;
    }
    SqlStmt q(db_,
              "SELECT key, spec, level, refill_rem, updated_ms, capacity_set, debt FROM "
              "quota_buckets");
    if (!q.status()) return q.status();
    int rc;
    while ((rc = q.step()) == SQLITE_ROW) {
      BucketState b{q.i64(2), q.i64(3), q.i64(4), q.i64(5), q.i64(6)};
      ledger_.restore(q.text(0), q.text(1), b);
    }
    if (rc != SQLITE_DONE) return q.stepStatus(rc, "load quota buckets");
    writer_ = std::thread([this] { run(); });
    return Status::ok();
  }

  bool hasDebtColumn() {
    SqlStmt q(db_, "SELECT 1 FROM pragma_table_info('quota_buckets') WHERE name = 'debt'");
    return q.status() && q.step() == SQLITE_ROW;
  }

  void reserve(const QuotaPlan& plan, int64_t now_ms, ReserveDone done) override {
    std::unique_lock<std::mutex> lock(mu_);
    ReserveOutcome out = ledger_.reserve(plan, now_ms);
    lock.unlock();
    done(std::move(out));
  }
  void settle(const QuotaPlan& plan, const QuotaTaken& taken, const QuotaAmounts& real,
              int64_t now_ms) override {
    std::lock_guard<std::mutex> lock(mu_);
    ledger_.settle(plan, taken, real, now_ms);
  }
  void refill(const std::string& key, const BucketSpec& spec, int64_t amount, int64_t now_ms,
              StatusDone done) override {
    admin([&] { ledger_.refill(key, spec, amount, now_ms); }, std::move(done));
  }
  void setCapacity(const std::string& key, const BucketSpec& spec, int64_t capacity, int64_t now_ms,
                   StatusDone done) override {
    admin([&] { ledger_.setCapacity(key, spec, capacity, now_ms); }, std::move(done));
  }
  void list(ListDone done) override {
    std::unique_lock<std::mutex> lock(mu_);
    MemoryQuotaStore::list(std::move(done));
  }

  void close() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      stop_ = true;
    }
    cv_.notify_all();
    if (writer_.joinable()) writer_.join();
    flush();
  }

 private:
  void run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, std::chrono::milliseconds(interval_ms_), [&] { return stop_ || kick_; });
      kick_ = false;
      lock.unlock();
      flush();
      lock.lock();
    }
  }

  // Admin changes are rare and should survive a crash right after: the writer runs at once.
  void admin(const std::function<void()>& change, StatusDone done) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      change();
      kick_ = true;
    }
    cv_.notify_all();
    done(Status::ok());
  }

  void flush() {
    std::vector<BucketRow> rows;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (std::string& key : ledger_.takeDirty()) {
        const QuotaLedger::Entry* e = ledger_.entry(key);
        if (e != nullptr) rows.push_back({std::move(key), e->spec, e->state});
      }
    }
    if (rows.empty()) return;
    std::lock_guard<std::mutex> db_lock(db_mu_);
    Status st = logstore::sqlExec(db_, "BEGIN IMMEDIATE");
    if (st) {
      SqlStmt up(db_,
                 "INSERT INTO quota_buckets(key, spec, level, refill_rem, updated_ms, "
                 "capacity_set, debt) VALUES(?,?,?,?,?,?,?) ON CONFLICT(key) DO UPDATE SET "
                 "spec=excluded.spec, level=excluded.level, refill_rem=excluded.refill_rem, "
                 "updated_ms=excluded.updated_ms, capacity_set=excluded.capacity_set, "
                 "debt=excluded.debt");
      for (const BucketRow& r : rows) {
        if (!st) break;
        up.bindText(1, r.key).bindText(2, r.spec).bind(3, r.state.level);
        up.bind(4, r.state.refill_rem).bind(5, r.state.updated_ms).bind(6, r.state.capacity_set);
        up.bind(7, r.state.debt);
        st = up.run("save quota bucket");
        up.reset();
      }
    }
    st = st ? logstore::sqlExec(db_, "COMMIT") : st;
    ++counters_.flushes;
    if (!st) {
      logstore::sqlExec(db_, "ROLLBACK");
      ++counters_.flush_errors;
      // Put the rows back so the next pass retries them.
      std::lock_guard<std::mutex> lock(mu_);
      for (const BucketRow& r : rows) ledger_.markDirty(r.key);
    }
  }

  sqlite3* db_;
  int64_t interval_ms_;
  std::mutex mu_;     // ledger_ and the flags
  std::mutex db_mu_;  // db_
  std::condition_variable cv_;
  bool stop_ = false;
  bool kick_ = false;
  std::thread writer_;
};

}  // namespace

Result<std::unique_ptr<QuotaStore>> openSqliteQuotaStore(const std::string& path,
                                                         int64_t flush_interval_ms) {
  auto db = logstore::sqlOpen(path, /*create=*/true, /*busy_timeout_ms=*/5000);
  if (!db) return db.status();
  logstore::sqlQueryText(db.value(), "PRAGMA journal_mode=WAL");
  logstore::sqlExec(db.value(), "PRAGMA synchronous=NORMAL");
  auto store = std::make_unique<SqliteQuotaStore>(db.value(), flush_interval_ms);
  if (Status st = store->load(); !st) {
    return Status(st.code(), path + ": " + st.message());
  }
  return std::unique_ptr<QuotaStore>(std::move(store));
}

}  // namespace gatehouse::proxy
