// Quota stores: where bucket levels live. One interface, three implementations:
//
//   memory  a QuotaLedger in this process; lost on exit (tests, and quotas without persistence).
//   sqlite  the same ledger, authoritative in memory, written behind to SQLite (WAL) by a thread
//           every flush_interval_ms and at close; loaded at open. A crash loses at most the last
//           interval of changes. sqlite_store.cc.
//   redis   buckets shared by gateway replicas: every reserve / settle / refill is one atomic Lua
//           script (EVALSHA) on the server, sent asynchronously on the gateway's loop through
//           hiredis' libuv adapter. Concurrency slots live there too (leases that the holding
//           replica renews), so max_requests / max_streams hold across replicas. With
//           allowance_ms, a replica takes budget and slots ahead in small allowances and serves
//           most reserves and settles from them without a call. redis_store.cc.
//
// Threads: every method is called on the gateway's loop thread and every callback fires on it
// (the memory and SQLite stores call back before returning). Ownership: the Gateway owns its
// store; plans passed in are copied when a call outlives it.
//
// Errors: a Result with a Status means the store could not answer (Redis unreachable or slow);
// the caller applies QuotaStoreConfig::fail_open. The memory and SQLite stores never fail.
#pragma once

#include <uv.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "proxy/quota/ledger.h"
#include "wg/status.h"

namespace gatehouse::proxy {

// One bucket instance as stored.
struct BucketRow {
  std::string key;   // "daily:alice@example.com"
  std::string spec;  // "daily:<user>"
  BucketState state;
};

struct QuotaStoreCounters {
  std::atomic<uint64_t> errors{0};   // calls the store could not answer
  std::atomic<uint64_t> flushes{0};  // SQLite write-behind batches
  std::atomic<uint64_t> flush_errors{0};
  std::atomic<uint64_t> calls{0};               // Redis script calls sent
  std::atomic<uint64_t> allowance_reserves{0};  // Redis: reserves served from an allowance
};

class QuotaStore {
 public:
  using ReserveDone = std::function<void(Result<ReserveOutcome>)>;
  using StatusDone = std::function<void(Status)>;
  using ListDone = std::function<void(Result<std::vector<BucketRow>>)>;

  virtual ~QuotaStore() = default;
  virtual void reserve(const QuotaPlan& plan, int64_t now_ms, ReserveDone done) = 0;
  // Fire and forget; a failure is counted.
  virtual void settle(const QuotaPlan& plan, const QuotaTaken& taken, const QuotaAmounts& real,
                      int64_t now_ms) = 0;
  virtual void refill(const std::string& key, const BucketSpec& spec, int64_t amount,
                      int64_t now_ms, StatusDone done) = 0;
  virtual void setCapacity(const std::string& key, const BucketSpec& spec, int64_t capacity,
                           int64_t now_ms, StatusDone done) = 0;
  // Every instance ever charged, as stored (not refilled to now).
  virtual void list(ListDone done) = 0;
  // Stops background work and writes what is pending (SQLite). Loop thread; idempotent.
  virtual void close() {}
  // True when the store counts requests in flight for every replica (Redis): the gateway then
  // puts a QuotaPlan::slot in plans with concurrency limits instead of counting locally.
  virtual bool sharesConcurrency() const { return false; }
  const QuotaStoreCounters& counters() const { return counters_; }

 protected:
  QuotaStoreCounters counters_;
};

// A QuotaStore over an in-process QuotaLedger; the base of the SQLite store.
class MemoryQuotaStore : public QuotaStore {
 public:
  void reserve(const QuotaPlan& plan, int64_t now_ms, ReserveDone done) override;
  void settle(const QuotaPlan& plan, const QuotaTaken& taken, const QuotaAmounts& real,
              int64_t now_ms) override;
  void refill(const std::string& key, const BucketSpec& spec, int64_t amount, int64_t now_ms,
              StatusDone done) override;
  void setCapacity(const std::string& key, const BucketSpec& spec, int64_t capacity, int64_t now_ms,
                   StatusDone done) override;
  void list(ListDone done) override;

 protected:
  QuotaLedger ledger_;
};

// The store `config` names (memory, SQLite or Redis).
Result<std::unique_ptr<QuotaStore>> openQuotaStore(uv_loop_t* loop, const QuotaStoreConfig& config);

// SQLite at `path` (created 0600 if missing). Loads every bucket at open.
Result<std::unique_ptr<QuotaStore>> openSqliteQuotaStore(const std::string& path,
                                                         int64_t flush_interval_ms = 200);

// Redis at host:port, keys under `prefix`. Connects lazily and reconnects after an outage.
std::unique_ptr<QuotaStore> openRedisQuotaStore(uv_loop_t* loop, const QuotaStoreConfig& config);

}  // namespace gatehouse::proxy
