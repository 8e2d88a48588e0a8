// LogWriter: takes RequestRecords off the request path and writes them to a LogStore on its own
// thread (DESIGN.md: "log writes are off the request path with a bounded queue").
//
//   gateway threads ──submit()──▶ bounded queue ──writer thread──▶ LogStore (one txn per batch)
//                                                        └── every retention_interval: expire a
//                                                            bounded step, incremental_vacuum
//
// submit() never waits for the database: it takes a mutex only long enough to append. When the
// queue holds `capacity` records (or `max_queued_body_bytes` of bodies), new records are queued
// without their bodies (bodies_dropped, and the stored record says so); at `hard_capacity`
// records, new records are dropped whole (records_dropped). A stalled disk therefore costs
// bounded memory and lost log detail, never gateway latency.
//
// Durability: submit() returns a sequence number (1, 2, ...; 0 when the record was dropped).
// durableSeq() is the highest n such that every accepted record with seq <= n is committed; a
// committed record survives kill -9 of the process (see LogStore "Durability"). The exceptions
// are counted: records_rejected (the id was already stored) and records_failed (see below).
// When the database is busy (another connection holds the write lock) or full, the writer keeps
// the batch and retries with backoff for as long as it runs; the queue bounds still apply
// meanwhile. Other errors (I/O, corruption) are retried a few times, then the batch is given up
// as records_failed so that one bad batch cannot stop logging. write_errors counts every failed
// attempt.
//
// Retention: when retention_days > 0, every retention_interval the writer deletes records older
// than that, at most retention_batch rows per transaction, interleaved with inserts, then
// returns up to vacuum_pages free pages to the file system. No VACUUM, so no long lock.
//
// Thread safety: submit, flush, durableSeq, waitDurable and counters may be called from any
// thread. The destructor drains the queue (waiting up to drain_timeout for a busy database, then
// counting what is left as records_dropped) and joins the thread. Ownership: the writer owns the
// LogStore; the clock is injected (no hidden time source in tests).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "proxy/logstore/log_store.h"
#include "proxy/logstore/record.h"

namespace gatehouse::proxy {

struct LogWriterOptions {
  size_t capacity = 4096;                          // queued records that may keep their bodies
  size_t hard_capacity = 16384;                    // queued records at all (>= capacity)
  size_t max_queued_body_bytes = 256ull << 20;     // body bytes waiting in the queue
  size_t batch_max = 256;                          // records per transaction
  std::chrono::milliseconds batch_delay{2};        // wait this long for a batch to fill
  std::chrono::milliseconds drain_timeout{10000};  // destructor: give up on a stuck database
  int retention_days = 0;                          // 0 = keep forever
  std::chrono::milliseconds retention_interval{60000};
  size_t retention_batch = 1000;  // rows per expiry transaction
  int vacuum_pages = 1024;        // pages returned to the file system per expiry step
  // Wall clock (Unix ms) for retention cutoffs. Empty = the system clock.
  std::function<int64_t()> now_ms = {};
};

// Monotonic counters since start, for /metrics.
struct LogWriterCounters {
  uint64_t accepted = 0;          // records queued (with or without bodies)
  uint64_t written = 0;           // records committed
  uint64_t batches = 0;           // write transactions committed (written / batches: batch size)
  uint64_t bodies_dropped = 0;    // records queued without their bodies (queue full)
  uint64_t records_dropped = 0;   // records not stored at all (hard bound, or shutdown)
  uint64_t records_rejected = 0;  // duplicate ids
  uint64_t records_failed = 0;    // batches given up after repeated non-busy errors
  uint64_t write_errors = 0;      // failed write transactions (each retried)
  uint64_t records_expired = 0;   // deleted by retention
  uint64_t queue_depth = 0;       // records waiting now
};

class LogWriter {
 public:
  LogWriter(std::unique_ptr<LogStore> store, LogWriterOptions options);
  ~LogWriter();
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  // Queues `record` (see the bounds above) and returns its sequence number, or 0 when it was
  // dropped. Never waits for I/O.
  uint64_t submit(RequestRecord record);

  // Waits until every record submitted before the call is committed (or rejected). False on
  // timeout, e.g. while another connection holds the write lock.
  bool flush(std::chrono::milliseconds timeout);
  // Waits until durableSeq() >= seq. False on timeout.
  bool waitDurable(uint64_t seq, std::chrono::milliseconds timeout);
  uint64_t durableSeq() const { return durable_seq_.load(std::memory_order_acquire); }

  LogWriterCounters counters() const;

 private:
  struct Pending {
    uint64_t seq;
    size_t body_bytes;
    RequestRecord record;
  };

  void run();
  // Takes the next batch off the queue, waiting for work or the next retention step.
  // nullopt when stopping and the queue is empty.
  std::optional<std::vector<Pending>> nextBatch(std::chrono::steady_clock::time_point due);
  // Writes `batch`, retrying while the store fails; false when it gave up at shutdown.
  bool writeBatch(std::vector<Pending> batch);
  // Sleeps `delay`, or less when the shutdown deadline passes first; false once it has.
  bool backoff(std::chrono::milliseconds delay);
  // One expiry step; true when more expired rows remain.
  bool expireStep();
  void markDurable(uint64_t seq);
  bool stopping() const;
  int64_t nowMs() const;

  std::unique_ptr<LogStore> store_;  // writer thread only
  const LogWriterOptions options_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;     // writer waits: records queued, flush, stop
  std::condition_variable durable_cv_;  // flush/waitDurable wait: durable_seq_ advanced
  std::deque<Pending> queue_;           // guarded by mu_
  size_t queued_body_bytes_ = 0;        // guarded by mu_
  uint64_t last_seq_ = 0;               // guarded by mu_
  uint64_t flush_target_ = 0;           // guarded by mu_: skip batch_delay until durable
  bool stop_ = false;                   // guarded by mu_
  std::chrono::steady_clock::time_point stop_deadline_;  // guarded by mu_

  std::atomic<uint64_t> durable_seq_{0};
  std::atomic<uint64_t> accepted_{0}, written_{0}, bodies_dropped_{0}, records_dropped_{0},
      records_rejected_{0}, records_failed_{0}, write_errors_{0}, records_expired_{0}, batches_{0},
      queue_depth_{0};

  std::thread thread_;  // last: started after every member above exists
};

}  // namespace gatehouse::proxy
