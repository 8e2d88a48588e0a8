// Outbox: the durable queue of webhook deliveries, one SQLite file of its own (hooks.outbox,
// by default gateway-outbox.db next to the request log; format in HOOKS.md "Outbox"). One row per
// (event, webhook URL); a row leaves when its webhook answered 2xx, or is marked dead after
// max_attempts failures (kept for inspection). Rows survive restarts: a gateway that stops with
// deliveries pending sends them when it starts again.
//
// The retry schedule is backoffMs(): base × 2^(attempts−1), capped, no jitter (deterministic;
// events are few and receivers are ours).
//
// Thread: one thread at a time (the webhook thread); nothing here touches the gateway's loop.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "wg/status.h"

namespace gatehouse::proxy {

inline constexpr int kOutboxFormatVersion = 1;

struct OutboxRow {
  int64_t seq = 0;  // assigned by add()
  std::string event_id;
  std::string url;  // the webhook it goes to (the config's url, as written)
  std::string kind;
  int64_t created_ms = 0;
  std::string payload;
  int64_t attempts = 0;
  int64_t next_attempt_ms = 0;
  std::string last_error;
  bool dead = false;
};

// Delay before attempt `attempts + 1` after `attempts` failures (attempts >= 1).
int64_t backoffMs(int64_t attempts, int64_t base_ms = 1000, int64_t cap_ms = 300'000);

class Outbox {
 public:
  // Opens or creates the file (0600, WAL).
  static Result<std::unique_ptr<Outbox>> open(const std::string& path);
  ~Outbox();
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;

  // Adds rows due at once; a (event_id, url) already present is ignored. One transaction.
  Status add(const std::vector<OutboxRow>& rows);
  // Live rows due at `now_ms` for one of `urls`, oldest first, at most `limit`.
  Result<std::vector<OutboxRow>> due(int64_t now_ms, const std::vector<std::string>& urls,
                                     size_t limit);
  // The earliest next_attempt_ms of live rows for `urls`; nullopt when none.
  Result<std::optional<int64_t>> nextDue(const std::vector<std::string>& urls);
  // A delivery started: the row is leased until `until_ms` (not due again before, so an attempt
  // that never reports, e.g. a crash, is retried after the lease).
  Status lease(int64_t seq, int64_t until_ms);
  Status delivered(int64_t seq);
  // A failed attempt: attempts = `attempts`, due again at `next_ms`, or dead.
  Status failed(int64_t seq, int64_t attempts, int64_t next_ms, const std::string& error,
                bool dead);
  // Every row (tests, inspection).
  Result<std::vector<OutboxRow>> all();

 private:
  explicit Outbox(sqlite3* db) : db_(db) {}
  Result<std::vector<OutboxRow>> select(const std::string& where_sql, int64_t now_ms,
                                        const std::vector<std::string>& urls, size_t limit);
  sqlite3* db_;
};

}  // namespace gatehouse::proxy
