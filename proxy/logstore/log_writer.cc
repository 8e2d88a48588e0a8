#include "proxy/logstore/log_writer.h"

#include <algorithm>
#include <cerrno>

namespace gatehouse::proxy {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr int64_t kDayMs = 24 * 60 * 60 * 1000;
// Non-busy errors (I/O, corruption) get this many attempts before a batch is given up.
constexpr int kMaxAttempts = 5;

LogWriterOptions normalize(LogWriterOptions o) {
  o.capacity = std::max<size_t>(o.capacity, 1);
  o.hard_capacity = std::max(o.hard_capacity, o.capacity);
  o.batch_max = std::max<size_t>(o.batch_max, 1);
  o.retention_batch = std::max<size_t>(o.retention_batch, 1);
  if (!o.now_ms) {
    o.now_ms = [] {
      return std::chrono::duration_cast<milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
          .count();
    };
  }
  return o;
}

size_t bodyBytes(const RequestRecord& r) {
  return (r.request_body ? r.request_body->size() : 0) +
         (r.response_body ? r.response_body->size() : 0) +
         (r.tool_result_source ? r.tool_result_source->body.size() : 0);
}

// Lock contention and a full disk clear up on their own; keep the batch until they do.
bool retryForever(const Status& s) { return s.code() == EBUSY || s.code() == ENOSPC; }

}  // namespace

LogWriter::LogWriter(std::unique_ptr<LogStore> store, LogWriterOptions options)
    : store_(std::move(store)), options_(normalize(std::move(options))) {
  thread_ = std::thread([this] { run(); });
}

LogWriter::~LogWriter() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    stop_deadline_ = Clock::now() + options_.drain_timeout;
  }
  work_cv_.notify_all();
  thread_.join();
}

uint64_t LogWriter::submit(RequestRecord record) {
  size_t body_bytes = bodyBytes(record);
  bool has_body = record.request_body || record.response_body || record.tool_result_source;
  std::lock_guard lock(mu_);
  if (stop_ || queue_.size() >= options_.hard_capacity) {
    records_dropped_.fetch_add(1, std::memory_order_relaxed);
    return 0;
  }
  if (has_body && (queue_.size() >= options_.capacity ||
                   queued_body_bytes_ + body_bytes > options_.max_queued_body_bytes)) {
    record.request_body.reset();
    record.response_body.reset();
    record.tool_result_source.reset();
    record.bodies_dropped = true;
    body_bytes = 0;
    bodies_dropped_.fetch_add(1, std::memory_order_relaxed);
  }
  uint64_t seq = ++last_seq_;
  queue_.push_back(Pending{seq, body_bytes, std::move(record)});
  queued_body_bytes_ += body_bytes;
  accepted_.fetch_add(1, std::memory_order_relaxed);
  queue_depth_.store(queue_.size(), std::memory_order_relaxed);
  // The writer only needs waking for the first record (it then collects a batch) or a full one.
  if (queue_.size() == 1 || queue_.size() == options_.batch_max) work_cv_.notify_one();
  return seq;
}

bool LogWriter::flush(milliseconds timeout) {
  uint64_t target;
  {
    std::lock_guard lock(mu_);
    target = last_seq_;
  }
  return waitDurable(target, timeout);
}

bool LogWriter::waitDurable(uint64_t seq, milliseconds timeout) {
  std::unique_lock lock(mu_);
  if (durable_seq_.load(std::memory_order_relaxed) >= seq) return true;
  // Someone is waiting: the writer stops collecting a fuller batch.
  flush_target_ = std::max(flush_target_, seq);
  work_cv_.notify_one();
  return durable_cv_.wait_for(lock, timeout,
                              [&] { return durable_seq_.load(std::memory_order_relaxed) >= seq; });
}

LogWriterCounters LogWriter::counters() const {
  auto get = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  return LogWriterCounters{get(accepted_),       get(written_),         get(batches_),
                           get(bodies_dropped_), get(records_dropped_), get(records_rejected_),
                           get(records_failed_), get(write_errors_),    get(records_expired_),
                           get(queue_depth_)};
}

int64_t LogWriter::nowMs() const { return options_.now_ms(); }

bool LogWriter::stopping() const {
  std::lock_guard lock(mu_);
  return stop_;
}

void LogWriter::run() {
  const bool retention = options_.retention_days > 0;
  // A restarted gateway expires at once rather than an interval later.
  Clock::time_point due = retention ? Clock::now() : Clock::time_point::max();
  for (;;) {
    auto batch = nextBatch(due);
    if (!batch) return;
    if (!batch->empty() && !writeBatch(std::move(*batch))) {
      // Shutdown deadline passed with the database still failing: what is left is lost.
      std::lock_guard lock(mu_);
      records_dropped_.fetch_add(queue_.size(), std::memory_order_relaxed);
      queue_.clear();
      queue_depth_.store(0, std::memory_order_relaxed);
      return;
    }
    // Checked after every batch so that expiry interleaves with inserts under steady load.
    if (retention && Clock::now() >= due && !stopping()) {
      bool more = expireStep();
      due = Clock::now() + (more ? milliseconds(0) : options_.retention_interval);
    }
  }
}

std::optional<std::vector<LogWriter::Pending>> LogWriter::nextBatch(Clock::time_point due) {
  std::unique_lock lock(mu_);
  auto ready = [&] { return !queue_.empty() || stop_; };
  if (due == Clock::time_point::max()) {
    work_cv_.wait(lock, ready);
  } else {
    work_cv_.wait_until(lock, due, ready);
  }
  if (queue_.empty()) {
    if (stop_) return std::nullopt;
    return std::vector<Pending>{};  // woke for retention
  }
  auto waited_on = [&] { return flush_target_ > durable_seq_.load(std::memory_order_relaxed); };
  if (options_.batch_delay.count() > 0 && queue_.size() < options_.batch_max && !stop_ &&
      !waited_on()) {
    work_cv_.wait_for(lock, options_.batch_delay,
                      [&] { return queue_.size() >= options_.batch_max || stop_ || waited_on(); });
  }
  size_t n = std::min(queue_.size(), options_.batch_max);
  std::vector<Pending> batch;
  batch.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    queued_body_bytes_ -= queue_.front().body_bytes;
    batch.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  queue_depth_.store(queue_.size(), std::memory_order_relaxed);
  return batch;
}

bool LogWriter::writeBatch(std::vector<Pending> batch) {
  uint64_t last = batch.back().seq;
  std::vector<RequestRecord> records;
  records.reserve(batch.size());
  for (auto& p : batch) records.push_back(std::move(p.record));
  batch.clear();

  for (int attempt = 0;; ++attempt) {
    auto result = store_->insert(records);
    if (result) {
      written_.fetch_add(result->inserted, std::memory_order_relaxed);
      batches_.fetch_add(1, std::memory_order_relaxed);
      records_rejected_.fetch_add(result->rejected, std::memory_order_relaxed);
      markDurable(last);
      return true;
    }
    write_errors_.fetch_add(1, std::memory_order_relaxed);
    if (!retryForever(result.status()) && attempt + 1 >= kMaxAttempts) {
      records_failed_.fetch_add(records.size(), std::memory_order_relaxed);
      markDurable(last);
      return true;
    }
    if (!backoff(milliseconds(10 << std::min(attempt, 7)))) {
      records_dropped_.fetch_add(records.size(), std::memory_order_relaxed);
      return false;
    }
  }
}

bool LogWriter::backoff(milliseconds delay) {
  std::unique_lock lock(mu_);
  auto past_deadline = [&] { return stop_ && Clock::now() >= stop_deadline_; };
  if (past_deadline()) return false;
  auto wake = Clock::now() + delay;
  if (stop_) wake = std::min(wake, stop_deadline_);
  // Submits notify work_cv_ too; the predicate keeps those from cutting the backoff short.
  work_cv_.wait_until(lock, wake, past_deadline);
  return !past_deadline();
}

bool LogWriter::expireStep() {
  int64_t cutoff = nowMs() - int64_t{options_.retention_days} * kDayMs;
  auto result = store_->expireBefore(cutoff, options_.retention_batch);
  if (!result) {
    write_errors_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  records_expired_.fetch_add(result->deleted, std::memory_order_relaxed);
  if (result->deleted > 0 && !store_->incrementalVacuum(options_.vacuum_pages)) {
    write_errors_.fetch_add(1, std::memory_order_relaxed);
  }
  return result->more;
}

void LogWriter::markDurable(uint64_t seq) {
  {
    std::lock_guard lock(mu_);
    durable_seq_.store(seq, std::memory_order_release);
  }
  durable_cv_.notify_all();
}

}  // namespace gatehouse::proxy
