// The webhook thread. See webhooks.h.
#include "proxy/hooks/webhooks.h"

#include <chrono>
#include <cstdio>

#include "proxy/hooks/signature.h"

namespace gatehouse::proxy {
namespace {

constexpr size_t kMaxReplyBytes = 64 * 1024;  // a receiver's answer body is not used

int64_t systemNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

WebhookOptions WebhookOptions::fromConfig(const HooksConfig& hooks) {
  WebhookOptions o;
  o.webhooks = hooks.webhooks;
  o.database = hooks.outbox;
  o.max_attempts = hooks.max_attempts;
  o.max_backoff_ms = hooks.max_backoff_ms;
  o.queue_size = hooks.queue_size;
  return o;
}

struct WebhookDispatcher::Worker {
  uv_loop_t loop{};
  uv_async_t async{};
  uv_timer_t timer{};
  std::unique_ptr<UpstreamPool> pool;
  std::unique_ptr<Outbox> outbox;
  std::map<int64_t, std::unique_ptr<HttpCall>> calls;  // by outbox seq
  std::vector<std::string> urls;
  bool stopping = false;
};

Result<std::unique_ptr<WebhookDispatcher>> WebhookDispatcher::start(WebhookOptions options) {
  auto outbox = Outbox::open(options.database);
  if (!outbox) return outbox.status();
  if (!options.now_ms) options.now_ms = systemNowMs;
  if (!options.log) {
    options.log = [](const std::string& line) {
      std::fprintf(stderr, "webhooks: %s\n", line.c_str());
    };
  }
  return std::unique_ptr<WebhookDispatcher>(
      new WebhookDispatcher(std::move(options), std::move(outbox.value())));
}

WebhookDispatcher::WebhookDispatcher(WebhookOptions options, std::unique_ptr<Outbox> outbox)
    : options_(std::move(options)), worker_(std::make_unique<Worker>()) {
  Worker& w = *worker_;
  uv_loop_init(&w.loop);
  w.async.data = this;
  uv_async_init(&w.loop, &w.async,
                [](uv_async_t* a) { static_cast<WebhookDispatcher*>(a->data)->run(); });
  w.timer.data = this;
  uv_timer_init(&w.loop, &w.timer);
  w.pool = std::make_unique<UpstreamPool>(&w.loop);
  w.outbox = std::move(outbox);
  for (const WebhookConfig& c : options_.webhooks) w.urls.push_back(c.endpoint.url);
  thread_ = std::thread([this] {
    run();  // what an earlier run left pending
    uv_run(&worker_->loop, UV_RUN_DEFAULT);
  });
}

WebhookDispatcher::~WebhookDispatcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    uv_async_send(&worker_->async);
  }
  thread_.join();
  uv_loop_close(&worker_->loop);
}

bool WebhookDispatcher::wants(std::string_view kind) const {
  for (const WebhookConfig& w : options_.webhooks) {
    if (w.wants(kind)) return true;
  }
  return false;
}

bool WebhookDispatcher::publish(WebhookEvent event) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stop_ && queue_.size() < options_.queue_size) {
      queue_.push_back(std::move(event));
      ++published_;
      uv_async_send(&worker_->async);
      return true;
    }
  }
  // One line for the 1st, 2nd, 4th, 8th … drop: an overload is visible without a log flood.
  uint64_t n = ++dropped_;
  if ((n & (n - 1)) == 0) {
    options_.log("queue full (" + std::to_string(options_.queue_size) + " events): dropped event " +
                 event.id + " (" + std::to_string(n) + " dropped so far)");
  }
  return false;
}

WebhookCounters WebhookDispatcher::counters() const {
  return {published_.load(),       dropped_.load(),  stored_.load(),      delivered_.load(),
          failed_attempts_.load(), given_up_.load(), store_errors_.load()};
}

// On the webhook thread: store what was queued, then start what is due, then sleep until the
// next row is due. Runs on every wake-up, timer and finished delivery.
void WebhookDispatcher::run() {
  Worker& w = *worker_;
  if (w.stopping) return;
  std::deque<WebhookEvent> events;
  bool stop;
  {
    std::lock_guard<std::mutex> lock(mu_);
    events.swap(queue_);
    stop = stop_;
    if (stop) uv_close(reinterpret_cast<uv_handle_t*>(&w.async), nullptr);
  }
  int64_t now = options_.now_ms();
  std::vector<OutboxRow> rows;
  for (const WebhookEvent& e : events) {
    for (const WebhookConfig& c : options_.webhooks) {
      if (!c.wants(e.kind)) continue;
      rows.push_back(
          {0, e.id, c.endpoint.url, e.kind, e.timestamp_ms, e.payload, 0, now, "", false});
    }
  }
  if (Status s = w.outbox->add(rows); !s) {
    store_errors_ += rows.size();
    options_.log("outbox: " + s.message() + " (" + std::to_string(rows.size()) + " events lost)");
  } else {
    stored_ += rows.size();
  }
  if (stop) {
    // Abandoned deliveries are due again at once on the next start.
    w.stopping = true;
    for (auto& [seq, call] : w.calls) w.outbox->lease(seq, now);
    w.calls.clear();
    w.pool.reset();
    uv_timer_stop(&w.timer);
    uv_close(reinterpret_cast<uv_handle_t*>(&w.timer), nullptr);
    w.outbox.reset();
    return;
  }
  if (w.calls.size() < options_.max_in_flight) {
    auto due = w.outbox->due(now, w.urls, options_.max_in_flight - w.calls.size());
    if (!due) options_.log("outbox: " + due.status().message());
    for (OutboxRow& row : due ? due.value() : std::vector<OutboxRow>{})
      deliver(std::move(row), now);
  }
  auto next = w.outbox->nextDue(w.urls);
  uv_timer_stop(&w.timer);
  if (next && next.value()) {
    int64_t delay = std::clamp<int64_t>(*next.value() - options_.now_ms(), 0, 60'000);
    uv_timer_start(
        &w.timer, [](uv_timer_t* t) { static_cast<WebhookDispatcher*>(t->data)->run(); },
        static_cast<uint64_t>(delay), 0);
  }
}

void WebhookDispatcher::deliver(OutboxRow row, int64_t now) {
  Worker& w = *worker_;
  const WebhookConfig* hook = nullptr;
  for (const WebhookConfig& c : options_.webhooks) {
    if (c.endpoint.url == row.url) hook = &c;
  }
  if (hook == nullptr) return;
  // Leased past the attempt's own deadline: a crash mid-attempt retries after that.
  w.outbox->lease(row.seq, now + hook->timeout_ms + 1000);
  int64_t ts = now / 1000;
  HttpCall::Headers headers = {
      {"webhook-id", row.event_id},
      {"webhook-timestamp", std::to_string(ts)},
      {"webhook-signature",
       webhookSignature(hook->secret.reveal(), row.event_id, ts, row.payload)}};
  int64_t seq = row.seq;
  int64_t attempts = row.attempts;
  std::string id = row.event_id;
  std::string url = row.url;
  w.calls[seq] = HttpCall::post(
      &w.loop, *w.pool, hook->endpoint, headers, std::move(row.payload), hook->timeout_ms,
      kMaxReplyBytes, [this, seq, attempts, id, url](Result<HttpReply> r) {
        Worker& w = *worker_;
        auto call = std::move(w.calls[seq]);  // freed when this callback returns
        w.calls.erase(seq);
        int64_t now = options_.now_ms();
        if (r && r->status >= 200 && r->status < 300) {
          ++delivered_;
          if (Status s = w.outbox->delivered(seq); !s) options_.log("outbox: " + s.message());
        } else {
          ++failed_attempts_;
          std::string why = r ? "HTTP " + std::to_string(r->status) : r.status().message();
          int64_t n = attempts + 1;
          bool dead = n >= static_cast<int64_t>(options_.max_attempts);
          if (dead) {
            ++given_up_;
            options_.log("gave up on event " + id + " to " + url + " after " + std::to_string(n) +
                         " attempts: " + why);
          }
          int64_t next = now + backoffMs(n, options_.base_backoff_ms, options_.max_backoff_ms);
          if (Status s = w.outbox->failed(seq, n, next, why, dead); !s) {
            options_.log("outbox: " + s.message());
          }
        }
        run();
      });
}

}  // namespace gatehouse::proxy
