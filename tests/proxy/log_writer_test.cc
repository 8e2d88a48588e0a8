// The log writer: submit never waits for the database, a full queue sheds bodies before records,
// the hard bound counts what it drops, an acknowledged record survives SIGKILL of the process,
// the destructor drains (and gives up on a stuck database in bounded time), and retention runs
// from the writer thread.
#include "proxy/logstore/log_writer.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "proxy/logstore/log_query.h"

namespace gatehouse::proxy {
namespace {

using namespace std::chrono_literals;

constexpr int64_t kNow = 1'750'000'000'000;  // a fixed "now" for the injected clock
constexpr int64_t kDayMs = 86'400'000;

// Another connection holding the write lock: the writer's transactions fail with EBUSY until
// release(). Readers still work (WAL).
class WriteLock {
 public:
  explicit WriteLock(const std::string& path) {
    sqlite3_open(path.c_str(), &db_);
    held_ = sqlite3_exec(db_, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) == SQLITE_OK;
  }
  ~WriteLock() {
    release();
    sqlite3_close(db_);
  }
  bool held() const { return held_; }
  void release() {
    if (held_) sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
    held_ = false;
  }

 private:
  sqlite3* db_ = nullptr;
  bool held_ = false;
};

class LogWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/gatehouse-logwriter-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/requests.db";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<LogStore> store() {
    LogStoreOptions o;
    o.busy_timeout_ms = 10;  // a locked database fails fast; the writer retries
    auto s = LogStore::open(path_, o);
    EXPECT_TRUE(s) << s.status().message();
    return s ? std::move(*s) : nullptr;
  }

  int64_t rows(const char* sql) {
    sqlite3* db = nullptr;
    sqlite3_open(path_.c_str(), &db);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, sql, -1, &st, nullptr);
    int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
  }

  // A writer whose database is write-locked by another connection (held in lock_) from before
  // its first transaction, so nothing commits until lock_->release().
  std::unique_ptr<LogWriter> lockedWriter(const LogWriterOptions& options) {
    auto s = store();
    lock_ = std::make_unique<WriteLock>(path_);
    EXPECT_TRUE(lock_->held());
    return std::make_unique<LogWriter>(std::move(s), options);
  }

  std::string dir_, path_;
  std::unique_ptr<WriteLock> lock_;
};

RequestRecord numbered(uint64_t n, size_t body_size = 0) {
  RequestRecord r;
  r.id = "req-" + std::to_string(n);
  r.start_ms = kNow;
  r.identity.user_login = "ci@example.com";
  r.status = 200;
  if (body_size > 0) r.request_body = std::string(body_size, 'b');
  return r;
}

TEST_F(LogWriterTest, WritesAndAcknowledges) {
  LogWriter writer(store(), {});
  uint64_t last = 0;
  for (uint64_t i = 1; i <= 1000; ++i) {
    last = writer.submit(numbered(i, i % 3 == 0 ? 100 : 0));
    ASSERT_EQ(last, i);
  }
  ASSERT_TRUE(writer.flush(30s));
  EXPECT_GE(writer.durableSeq(), last);
  auto c = writer.counters();
  EXPECT_EQ(c.accepted, 1000u);
  EXPECT_EQ(c.written, 1000u);
  // Records go in batches of at most batch_max (256): at least 4 transactions, each counted.
  EXPECT_GE(c.batches, 4u);
  EXPECT_LE(c.batches, 1000u);
  EXPECT_EQ(c.bodies_dropped + c.records_dropped + c.write_errors, 0u);
  EXPECT_EQ(rows("SELECT COUNT(*) FROM requests"), 1000);
  EXPECT_EQ(rows("SELECT COUNT(*) FROM request_bodies"), 333);
}

TEST_F(LogWriterTest, FullQueueShedsBodiesFirstThenRecords) {
  auto writer = lockedWriter({.capacity = 10, .hard_capacity = 20, .batch_max = 1});
  int accepted = 0;
  for (int i = 1; i <= 30; ++i) accepted += writer->submit(numbered(i, 1000)) != 0;
  EXPECT_EQ(writer->durableSeq(), 0u);  // nothing can commit while the lock is held

  // The writer may have taken one record off the queue (its first batch, which then waits on the
  // lock). When it took it decides one more body: taken before the 11th submit, the queue still
  // had room for 10 bodies after it (10 shed); taken later, the 11th had already been shed (11).
  auto c = writer->counters();
  uint64_t in_flight = c.accepted - 20;
  ASSERT_LE(in_flight, 1u);
  EXPECT_EQ(c.accepted, static_cast<uint64_t>(accepted));
  EXPECT_GE(c.bodies_dropped, 10u);
  EXPECT_LE(c.bodies_dropped, 10u + in_flight);
  EXPECT_EQ(c.records_dropped, 10 - in_flight);

  lock_->release();
  ASSERT_TRUE(writer->flush(30s));
  EXPECT_EQ(rows("SELECT COUNT(*) FROM requests"), accepted);
  EXPECT_EQ(rows("SELECT COUNT(*) FROM request_bodies"),
            accepted - static_cast<int64_t>(c.bodies_dropped));
  EXPECT_EQ(rows("SELECT COUNT(*) FROM requests WHERE bodies_dropped = 1"),
            static_cast<int64_t>(c.bodies_dropped));
  // The records that kept their bodies are the first ones.
  EXPECT_EQ(rows("SELECT MAX(seq) FROM request_bodies"),
            rows("SELECT MIN(seq) FROM requests WHERE bodies_dropped = 1") - 1);
}

TEST_F(LogWriterTest, BodyByteBudgetShedsLargeBodies) {
  auto writer = lockedWriter({.max_queued_body_bytes = 5000, .batch_max = 1});
  for (int i = 1; i <= 20; ++i) writer->submit(numbered(i, 1000));
  auto c = writer->counters();
  EXPECT_EQ(c.records_dropped, 0u);
  EXPECT_GE(c.bodies_dropped, 14u);  // 5 fit the budget, one more may be in flight
  EXPECT_LE(c.bodies_dropped, 15u);
  lock_->release();
  ASSERT_TRUE(writer->flush(30s));
  EXPECT_EQ(rows("SELECT COUNT(*) FROM request_bodies"),
            20 - static_cast<int64_t>(c.bodies_dropped));
}

TEST_F(LogWriterTest, SubmitNeverWaitsForALockedDatabase) {
  auto writer = lockedWriter({.capacity = 1000, .hard_capacity = 2000});
  auto start = std::chrono::steady_clock::now();
  for (int i = 1; i <= 100'000; ++i) writer->submit(numbered(i, i % 2 ? 64 : 0));
  auto took = std::chrono::steady_clock::now() - start;
  // The proof is that all 100k returned while no transaction could commit; the time bound only
  // turns a hang into a failure.
  EXPECT_EQ(writer->durableSeq(), 0u);
  EXPECT_LT(took, 20s);
  std::cout << "100000 submits to a locked database: "
            << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms\n";
  auto c = writer->counters();
  EXPECT_EQ(c.accepted + c.records_dropped, 100'000u);
  EXPECT_GE(c.records_dropped, 100'000u - 2000 - 256);
  EXPECT_FALSE(writer->flush(50ms));

  lock_->release();
  ASSERT_TRUE(writer->flush(30s));
  EXPECT_EQ(rows("SELECT COUNT(*) FROM requests"), static_cast<int64_t>(c.accepted));
  EXPECT_EQ(writer->counters().written, c.accepted);
}

TEST_F(LogWriterTest, AcknowledgedRecordsSurviveSigkill) {
  constexpr uint64_t kRecords = 2000;
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    alarm(60);  // never outlive a stuck test
    LogWriter writer(store(), {});
    uint64_t last = 0;
    for (uint64_t i = 1; i <= kRecords; ++i) last = writer.submit(numbered(i, 256));
    if (last != kRecords || !writer.waitDurable(last, 30s)) _exit(1);
    // Records submitted after the acknowledgement may or may not make it; only the acked count.
    for (uint64_t i = kRecords + 1; i <= kRecords + 500; ++i) writer.submit(numbered(i, 256));
    kill(getpid(), SIGKILL);
    _exit(2);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
  ASSERT_EQ(WTERMSIG(status), SIGKILL);

  auto reopened = store();  // recovers the WAL
  ASSERT_TRUE(reopened);
  auto reader = LogReader::open(path_);
  ASSERT_TRUE(reader);
  for (uint64_t i : {uint64_t{1}, kRecords / 2, kRecords}) {
    auto r = (*reader)->getRequest("req-" + std::to_string(i), true);
    ASSERT_TRUE(r) << "record " << i << ": " << r.status().message();
    EXPECT_EQ(r->request_body->size(), 256u);
  }
  EXPECT_EQ(rows("SELECT COUNT(*) FROM requests WHERE CAST(substr(id, 5) AS INTEGER) <= 2000"),
            static_cast<int64_t>(kRecords));
}

TEST_F(LogWriterTest, DestructorDrainsTheQueue) {
  {
    LogWriterOptions o;
    o.batch_delay = 50ms;  // records are still queued when the destructor runs
    LogWriter writer(store(), o);
    for (int i = 1; i <= 3000; ++i) writer.submit(numbered(i));
  }
  EXPECT_EQ(rows("SELECT COUNT(*) FROM requests"), 3000);
}

TEST_F(LogWriterTest, DestructorGivesUpOnAStuckDatabase) {
  auto writer = lockedWriter({.drain_timeout = 200ms});
  for (int i = 1; i <= 100; ++i) writer->submit(numbered(i));
  auto start = std::chrono::steady_clock::now();
  writer.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 20s);  // bounded, not forever
  lock_->release();
  EXPECT_EQ(rows("SELECT COUNT(*) FROM requests"), 0);
}

TEST_F(LogWriterTest, DuplicateIdsAreCountedAndDoNotStallDurability) {
  LogWriter writer(store(), {});
  writer.submit(numbered(1));
  uint64_t seq = writer.submit(numbered(1));
  writer.submit(numbered(2));
  ASSERT_TRUE(writer.waitDurable(seq, 30s));
  ASSERT_TRUE(writer.flush(30s));
  auto c = writer.counters();
  EXPECT_EQ(c.written, 2u);
  EXPECT_EQ(c.records_rejected, 1u);
}

TEST_F(LogWriterTest, RetentionExpiresOldRecordsFromTheWriterThread) {
  auto s = store();
  std::vector<RequestRecord> old;
  for (int i = 0; i < 2500; ++i) {
    RequestRecord r = numbered(i);
    r.start_ms = kNow - 40 * kDayMs + i;
    r.request_body = std::string(3000, 'o');
    old.push_back(std::move(r));
  }
  ASSERT_TRUE(s->insert(old));
  LogWriterOptions o;
  o.retention_days = 30;
  o.retention_batch = 1000;
  o.retention_interval = 1h;  // only the start-up pass and its follow-up steps run
  o.now_ms = [] { return kNow; };
  LogWriter writer(std::move(s), o);
  for (int i = 10'000; i < 10'010; ++i) writer.submit(numbered(i));  // fresh: kept
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (writer.counters().records_expired < 2500 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_TRUE(writer.flush(30s));
  EXPECT_EQ(writer.counters().records_expired, 2500u);
  EXPECT_EQ(rows("SELECT COUNT(*) FROM requests"), 10);
  EXPECT_EQ(rows("SELECT COUNT(*) FROM request_bodies"), 0);
  EXPECT_EQ(rows("SELECT MIN(start_ms) FROM requests"), kNow);
}

}  // namespace
}  // namespace gatehouse::proxy
