// The request log's store and queries: every field survives a roundtrip, credentials never reach
// the file, bodies are compressed and come back exact, retention deletes in bounded steps,
// usage sums are exact for every grouping, tag filters are exact, paging is stable, and the
// schema migrates from an empty file and reopens.
#include "proxy/logstore/log_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "proxy/logstore/log_query.h"
#include "tests/proxy/log_test_util.h"

namespace gatehouse::proxy {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kDay = 24 * 60 * 60 * 1000;
constexpr int64_t kT0 = 1'740'787'200'000;  // 2025-03-01T00:00:00Z

RequestRecord fullRecord() {
  RequestRecord r;
  r.id = "0123456789abcdef0123456789abcdef";
  r.start_ms = kT0 + 1234;
  r.identity = {"n-42",
                "ci-runner-7",
                "alice@example.com",
                "Alice Example",
                {"group:eng", "group:ml"},
                {"tag:ci", "tag:pr-review-bot"}};
  r.session_id = "0195f1c2-7d2e-7b3a-9c4d-5e6f7a8b9c0d";
  r.user_agent = "claude-cli/2.1.90 (external, cli)";
  r.provider = "anthropic";
  r.api_kind = "anthropic.messages";
  r.model = "claude-sonnet-4-6";
  r.method = "POST";
  r.path = "/v1/messages?beta=true";
  r.status = 529;
  r.error = "upstream overloaded";
  r.hook = "modify";
  r.latency_ms = 8123;
  r.ttfb_ms = 412;
  r.streamed = true;
  r.partial = true;
  r.tokens = {1200, 345, 50000, 2048, std::nullopt, 77};
  r.cost_nanodollars = 123'456'789;
  r.request_headers = {
      {"content-type", "application/json"}, {"anthropic-beta", "a,b"}, {"anthropic-beta", "c"}};
  r.response_headers = {{"request-id", "req_01"}, {"content-type", "text/event-stream"}};
  r.request_body = R"({"model":"claude-sonnet-4-6","stream":true})";
  r.response_body = std::string("event: message_start\ndata: {}\n\n\0tail", 36);
  return r;
}

// A small record for the aggregate tests.
RequestRecord rec(const std::string& id, int64_t start_ms, const std::string& user,
                  std::vector<std::string> tags, const std::string& model) {
  RequestRecord r;
  r.id = id;
  r.start_ms = start_ms;
  r.identity.user_login = user;
  r.identity.tags = std::move(tags);
  r.api_kind = "anthropic.messages";
  r.model = model;
  r.status = 200;
  return r;
}

std::vector<std::string> ids(const RequestPage& page) {
  std::vector<std::string> out;
  for (const auto& r : page.records) out.push_back(r.id);
  return out;
}

TEST(LogStoreTest, RoundtripsEveryField) {
  Scratch s;
  auto store = openStore(s.db());
  RequestRecord r = fullRecord();
  insertAll(*store, {r});
  auto reader = openReader(s.db());

  auto got = reader->getRequest(r.id, /*with_bodies=*/true);
  ASSERT_TRUE(got) << got.status().message();
  EXPECT_EQ(*got, r);

  auto lean = reader->getRequest(r.id, /*with_bodies=*/false);
  ASSERT_TRUE(lean);
  EXPECT_FALSE(lean->request_body);
  EXPECT_FALSE(lean->response_body);
  EXPECT_EQ(lean->request_headers, r.request_headers);

  // Unknown stays unknown: nullopt is not 0.
  RequestRecord bare = rec("bare", kT0, "bob", {}, "m");
  insertAll(*store, {bare});
  auto b = reader->getRequest("bare", true);
  ASSERT_TRUE(b);
  EXPECT_EQ(*b, bare);
  EXPECT_FALSE(b->ttfb_ms);
  EXPECT_FALSE(b->cost_nanodollars);
  EXPECT_FALSE(b->tokens.input);

  EXPECT_EQ(reader->getRequest("missing", true).status().code(), ENOENT);
}

// Header names and values of every shape come back as JSON would carry them: printable ASCII
// as it was, quotes, backslashes and control bytes escaped, UTF-8 kept, invalid UTF-8 replaced
// by U+FFFD (what nlohmann's serializer does with error_handler_t::replace).
TEST(LogStoreTest, HeadersOfAnyBytesRoundtripAsJson) {
  Scratch s;
  auto store = openStore(s.db());
  RequestRecord r = fullRecord();
  std::vector<std::string> values = {"plain value",
                                     "q\"uote",
                                     "back\\slash",
                                     "tab\tnl\n\x01",
                                     "caf\xc3\xa9 \xe2\x9c\x93",
                                     "bad \xff\xfe",
                                     std::string(1, '\x7f'),
                                     ""};
  r.request_headers.clear();
  for (size_t i = 0; i < values.size(); ++i) {
    r.request_headers.push_back({"x-h" + std::to_string(i), values[i]});
  }
  r.request_headers.push_back({"we\"ird\\name", "v"});
  insertAll(*store, {r});
  auto got = openReader(s.db())->getRequest(r.id, false);
  ASSERT_TRUE(got) << got.status().message();
  ASSERT_EQ(got->request_headers.size(), r.request_headers.size());
  for (size_t i = 0; i < r.request_headers.size(); ++i) {
    auto via = [](const std::string& v) {
      return nlohmann::json::parse(
                 nlohmann::json(v).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))
          .get<std::string>();
    };
    EXPECT_EQ(got->request_headers[i].name, via(r.request_headers[i].name));
    EXPECT_EQ(got->request_headers[i].value, via(r.request_headers[i].value)) << i;
  }
  EXPECT_EQ(got->request_headers[5].value, "bad \xef\xbf\xbd\xef\xbf\xbd");
}

TEST(LogStoreTest, RedactsCredentialHeadersWhateverTheCaller) {
  Scratch s;
  auto store = openStore(s.db());
  RequestRecord r = fullRecord();
  const char* secret = "sk-ant-SECRETVALUE";
  r.request_headers = {{"Authorization", std::string("Bearer ") + secret},
                       {"X-Api-Key", secret},
                       {"proxy-authorization", secret},
                       {"Cookie", secret},
                       {"api-key", secret},
                       {"X-GOOG-API-KEY", secret},
                       {"x-amz-security-token", secret},
                       {"x-api-key-hint", "kept"},
                       {"content-type", "application/json"}};
  r.response_headers = {{"Set-Cookie", secret}, {"request-id", "req_1"}};
  insertAll(*store, {r});
  store.reset();

  auto got = openReader(s.db())->getRequest(r.id, false);
  ASSERT_TRUE(got);
  for (size_t i = 0; i < 7; ++i) {
    EXPECT_EQ(got->request_headers[i].name, r.request_headers[i].name);
    EXPECT_EQ(got->request_headers[i].value, kRedacted) << r.request_headers[i].name;
  }
  EXPECT_EQ(got->request_headers[7].value, "kept");
  EXPECT_EQ(got->request_headers[8].value, "application/json");
  EXPECT_EQ(got->response_headers[0].value, kRedacted);
  EXPECT_EQ(got->response_headers[1].value, "req_1");

  std::string bytes;
  for (const char* suffix : {"", "-wal"}) {
    std::ifstream in(s.db() + suffix, std::ios::binary);
    bytes.append(std::istreambuf_iterator<char>(in), {});
  }
  EXPECT_EQ(bytes.find("SECRETVALUE"), std::string::npos);

  std::vector<RecordHeader> hs = {{"AUTHORIZATION", "x"}, {"accept", "y"}};
  redactHeaders(hs);
  EXPECT_EQ(hs[0].value, kRedacted);
  EXPECT_EQ(hs[1].value, "y");
}

TEST(LogStoreTest, CompressesBodiesAndReturnsThemExact) {
  Scratch s;
  auto store = openStore(s.db());
  // 1 MiB of JSON-like text compresses well; 1 MiB of noise does not, and must survive too.
  std::string text;
  for (int i = 0; text.size() < (1u << 20); ++i) {
    text += R"({"role":"user","content":"line )" + std::to_string(i) + R"( of the prompt"},)";
  }
  text.resize(1u << 20);
  std::string noise(1u << 20, '\0');
  std::mt19937_64 rng(7);
  for (auto& c : noise) c = static_cast<char>(rng());

  RequestRecord a = rec("a", kT0, "u", {}, "m");
  a.request_body = text;
  a.response_body = noise;
  RequestRecord b = rec("b", kT0, "u", {}, "m");
  b.request_body = "";  // captured and empty is not "not captured"
  RequestRecord c = rec("c", kT0, "u", {}, "m");
  insertAll(*store, {a, b, c});

  EXPECT_LT(count(s.db(), "SELECT length(request) FROM request_bodies"), (1 << 20) / 10);
  EXPECT_EQ(count(s.db(), "SELECT request_size FROM request_bodies"), 1 << 20);
  EXPECT_EQ(count(s.db(), "SELECT COUNT(*) FROM request_bodies"), 2);  // c has none

  auto reader = openReader(s.db());
  auto got = reader->getRequest("a", true);
  ASSERT_TRUE(got) << got.status().message();
  EXPECT_TRUE(got->request_body == text);
  EXPECT_TRUE(got->response_body == noise);
  auto gb = reader->getRequest("b", true);
  ASSERT_TRUE(gb);
  EXPECT_EQ(gb->request_body, std::optional<std::string>(""));
  EXPECT_FALSE(gb->response_body);
  EXPECT_FALSE(reader->getRequest("c", true)->request_body);

  // JSON: text bodies as strings, other bytes as base64.
  auto j = toJson(*got, /*detail=*/true);
  EXPECT_EQ(j["request_body"].get<std::string>().size(), 1u << 20);
  EXPECT_TRUE(j.contains("response_body_base64"));
  EXPECT_FALSE(j.contains("response_body"));
  EXPECT_NO_THROW(j.dump());
}

TEST(LogStoreTest, DamagedBodyIsAnErrorNotACrash) {
  Scratch s;
  auto store = openStore(s.db());
  RequestRecord a = rec("a", kT0, "u", {}, "m");
  a.request_body = std::string(4096, 'x');
  insertAll(*store, {a});
  sqlite3* db = nullptr;
  sqlite3_open(s.db().c_str(), &db);
  sqlite3_exec(db, "UPDATE request_bodies SET request = x'28b52ffd0000'", nullptr, nullptr,
               nullptr);
  sqlite3_close(db);
  auto got = openReader(s.db())->getRequest("a", true);
  EXPECT_EQ(got.status().code(), EILSEQ);
}

TEST(LogStoreTest, RejectsADuplicateIdAndKeepsTheRestOfTheBatch) {
  Scratch s;
  auto store = openStore(s.db());
  insertAll(*store, {rec("x", kT0, "u", {"tag:a"}, "m")});
  auto r = store->insert({rec("y", kT0, "u", {}, "m"), rec("x", kT0 + 1, "v", {"tag:b"}, "m"),
                          rec("z", kT0, "u", {}, "m")});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->inserted, 2u);
  EXPECT_EQ(r->rejected, 1u);
  EXPECT_EQ(count(s.db(), "SELECT COUNT(*) FROM requests"), 3);
  EXPECT_EQ(count(s.db(), "SELECT COUNT(*) FROM request_tags WHERE tag = 'tag:b'"), 0);
}

TEST(LogStoreTest, ExpiresInBoundedStepsWithTagsAndBodies) {
  Scratch s;
  auto store = openStore(s.db());
  std::vector<RequestRecord> batch;
  for (int i = 0; i < 2500; ++i) {
    RequestRecord r = rec("old" + std::to_string(i), kT0 + i, "u", {"tag:ci"}, "m");
    r.request_body = std::string(2000, static_cast<char>('a' + i % 26));
    batch.push_back(std::move(r));
  }
  for (int i = 0; i < 10; ++i) {
    RequestRecord r = rec("new" + std::to_string(i), kT0 + 30 * kDay + i, "u", {"tag:ci"}, "m");
    r.request_body = "kept";
    batch.push_back(std::move(r));
  }
  insertAll(*store, batch);
  int64_t cutoff = kT0 + 10 * kDay;

  std::vector<size_t> steps;
  for (;;) {
    auto e = store->expireBefore(cutoff, 1000);
    ASSERT_TRUE(e) << e.status().message();
    steps.push_back(e->deleted);
    ASSERT_TRUE(store->incrementalVacuum(1024));
    if (!e->more) break;
  }
  EXPECT_EQ(steps, (std::vector<size_t>{1000, 1000, 500}));
  EXPECT_EQ(count(s.db(), "SELECT COUNT(*) FROM requests"), 10);
  EXPECT_EQ(count(s.db(), "SELECT COUNT(*) FROM request_tags"), 10);
  EXPECT_EQ(count(s.db(), "SELECT COUNT(*) FROM request_bodies"), 10);
  EXPECT_EQ(count(s.db(), "SELECT MIN(start_ms) FROM requests"), kT0 + 30 * kDay);
  EXPECT_EQ(count(s.db(), "PRAGMA auto_vacuum"), 2);  // INCREMENTAL
  EXPECT_EQ(count(s.db(), "PRAGMA freelist_count"), 0);
  auto again = store->expireBefore(cutoff, 1000);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->deleted, 0u);
  EXPECT_FALSE(again->more);
}

TEST(LogStoreTest, UsageSumsAreExactForEveryGrouping) {
  Scratch s;
  auto store = openStore(s.db());
  auto withUsage = [](RequestRecord r, RecordTokens t, std::optional<int64_t> cost,
                      std::string ua) {
    r.tokens = t;
    r.cost_nanodollars = cost;
    r.user_agent = std::move(ua);
    return r;
  };
  insertAll(*store,
            {withUsage(rec("1", kT0 + 10, "alice", {"tag:ci"}, "sonnet"), {10, 20, 30, 40, 50, 6},
                       1000, "claude-cli/2"),
             withUsage(rec("2", kT0 + kDay - 1, "alice", {"tag:ci", "tag:bot"}, "opus"),
                       {1, 2, std::nullopt, 4, 5, std::nullopt}, std::nullopt, "codex_cli_rs/0.1"),
             withUsage(rec("3", kT0 + kDay, "bob", {}, "sonnet"), {100, 200, 300, 400, 500, 60},
                       5'000'000'000, "claude-cli/2"),
             withUsage(rec("4", kT0 + 2 * kDay, "bob", {"tag:ci-2"}, "sonnet"), {}, 7, "")});
  auto reader = openReader(s.db());
  auto usage = [&](UsageGroupBy g, LogFilter f = {}) {
    auto rows = reader->usage({g, f});
    EXPECT_TRUE(rows) << rows.status().message();
    std::map<std::string, UsageTotals> out;
    for (auto& row : *rows) out[row.key] = row.totals;
    return out;
  };

  auto byUser = usage(UsageGroupBy::kUser);
  ASSERT_EQ(byUser.size(), 2u);
  EXPECT_EQ(byUser["alice"], (UsageTotals{2, 11, 22, 30, 44, 55, 6, 1000, 1}));
  EXPECT_EQ(byUser["bob"], (UsageTotals{2, 100, 200, 300, 400, 500, 60, 5'000'000'007, 0}));

  auto byTag = usage(UsageGroupBy::kTag);  // request 2 counts in both tags, request 3 in none
  ASSERT_EQ(byTag.size(), 3u);
  EXPECT_EQ(byTag["tag:ci"], (UsageTotals{2, 11, 22, 30, 44, 55, 6, 1000, 1}));
  EXPECT_EQ(byTag["tag:bot"], (UsageTotals{1, 1, 2, 0, 4, 5, 0, 0, 1}));
  EXPECT_EQ(byTag["tag:ci-2"], (UsageTotals{1, 0, 0, 0, 0, 0, 0, 7, 0}));

  auto byModel = usage(UsageGroupBy::kModel);
  ASSERT_EQ(byModel.size(), 2u);
  EXPECT_EQ(byModel["opus"], (UsageTotals{1, 1, 2, 0, 4, 5, 0, 0, 1}));
  EXPECT_EQ(byModel["sonnet"], (UsageTotals{3, 110, 220, 330, 440, 550, 66, 5'000'001'007, 0}));

  auto byDay = usage(UsageGroupBy::kDay);  // UTC days
  ASSERT_EQ(byDay.size(), 3u);
  EXPECT_EQ(byDay["2025-03-01"].requests, 2);
  EXPECT_EQ(byDay["2025-03-02"].input, 100);
  EXPECT_EQ(byDay["2025-03-03"].cost_nanodollars, 7);

  auto byAgent = usage(UsageGroupBy::kUserAgent);
  ASSERT_EQ(byAgent.size(), 3u);
  EXPECT_EQ(byAgent["claude-cli/2"],
            (UsageTotals{2, 110, 220, 330, 440, 550, 66, 5'000'001'000, 0}));
  EXPECT_EQ(byAgent[""].requests, 1);

  // Filters narrow the sums: a time window, and one user's models.
  auto window =
      usage(UsageGroupBy::kUser, LogFilter{.since_ms = kT0 + kDay, .until_ms = kT0 + 2 * kDay});
  ASSERT_EQ(window.size(), 1u);
  EXPECT_EQ(window["bob"].requests, 1);
  auto aliceModels = usage(UsageGroupBy::kModel, LogFilter{.user = "alice"});
  EXPECT_EQ(aliceModels.size(), 2u);
  EXPECT_EQ(aliceModels["sonnet"].input, 10);

  auto j = toJson(*reader->usage({UsageGroupBy::kUser, {}}));
  EXPECT_EQ(j[0]["key"], "alice");
  EXPECT_EQ(j[0]["unpriced_requests"], 1);
  EXPECT_EQ(parseUsageGroupBy("user_agent"), UsageGroupBy::kUserAgent);
  EXPECT_FALSE(parseUsageGroupBy("users"));
}

TEST(LogStoreTest, UsageAndSessionsCountModelCallsOnly) {
  Scratch s;
  auto store = openStore(s.db());
  std::vector<RequestRecord> recs = {
      rec("call", kT0, "alice", {}, "m"), rec("refused", kT0 + 1, "alice", {}, "m"),
      rec("models", kT0 + 2, "alice", {}, ""), rec("admin", kT0 + 3, "alice", {}, ""),
      rec("junk", kT0 + 4, "alice", {}, "")};
  recs[1].status = 403;
  recs[1].api_kind = "openai.chat";
  recs[2].api_kind = "models";
  recs[3].api_kind = "admin";
  recs[4].api_kind = "not_found";
  for (auto& r : recs) r.session_id = "s1";
  insertAll(*store, recs);
  auto reader = openReader(s.db());
  auto u = reader->usage({UsageGroupBy::kUser, {}});
  ASSERT_TRUE(u);
  ASSERT_EQ(u->size(), 1u);
  EXPECT_EQ((*u)[0].totals.requests, 2);  // the call and the refused call
  auto sess = reader->sessions({});
  ASSERT_TRUE(sess);
  ASSERT_EQ(sess->size(), 1u);
  EXPECT_EQ((*sess)[0].totals.requests, 2);
  auto page = reader->listRequests({});
  ASSERT_TRUE(page);
  EXPECT_EQ(page->records.size(), 5u);  // all of them are in the log
}

TEST(LogStoreTest, TagFilterIsExact) {
  Scratch s;
  auto store = openStore(s.db());
  insertAll(
      *store,
      {rec("ci", kT0, "u", {"tag:ci"}, "m"), rec("ci2", kT0 + 1, "u", {"tag:ci-2"}, "m"),
       rec("c", kT0 + 2, "u", {"tag:c"}, "m"), rec("both", kT0 + 3, "u", {"tag:x", "tag:ci"}, "m"),
       rec("pct", kT0 + 4, "u", {"tag:c%"}, "m"), rec("none", kT0 + 5, "u", {}, "m")});
  auto reader = openReader(s.db());
  auto list = [&](const std::string& tag) {
    auto page = reader->listRequests({.filter = {.tag = tag}});
    EXPECT_TRUE(page) << page.status().message();
    return ids(*page);
  };
  EXPECT_EQ(list("tag:ci"), (std::vector<std::string>{"both", "ci"}));
  EXPECT_EQ(list("tag:ci-2"), (std::vector<std::string>{"ci2"}));
  EXPECT_EQ(list("tag:c"), (std::vector<std::string>{"c"}));
  EXPECT_EQ(list("tag:c%"), (std::vector<std::string>{"pct"}));
  EXPECT_TRUE(list("tag:").empty());
  EXPECT_EQ(list("").size(), 6u);

  auto u = reader->usage({UsageGroupBy::kUser, {.tag = "tag:ci"}});
  ASSERT_TRUE(u);
  ASSERT_EQ(u->size(), 1u);
  EXPECT_EQ((*u)[0].totals.requests, 2);
  // By tag, among the requests carrying tag:ci: their other tags show up too.
  auto t = reader->usage({UsageGroupBy::kTag, {.tag = "tag:ci", .since_ms = kT0 + 1}});
  ASSERT_TRUE(t);
  ASSERT_EQ(t->size(), 2u);
  EXPECT_EQ((*t)[0].key, "tag:ci");
  EXPECT_EQ((*t)[0].totals.requests, 1);
  EXPECT_EQ((*t)[1].key, "tag:x");
}

TEST(LogStoreTest, FiltersByUserModelStatusSessionAndTime) {
  Scratch s;
  auto store = openStore(s.db());
  RequestRecord a = rec("a", kT0, "alice", {}, "sonnet");
  a.session_id = "s1";
  RequestRecord b = rec("b", kT0 + 100, "bob", {}, "opus");
  b.status = 429;
  RequestRecord c = rec("c", kT0 + 200, "alice", {}, "opus");
  c.session_id = "s1";
  insertAll(*store, {a, b, c});
  auto reader = openReader(s.db());
  auto list = [&](LogFilter f) { return ids(*reader->listRequests({.filter = f})); };
  EXPECT_EQ(list({.user = "alice"}), (std::vector<std::string>{"c", "a"}));
  EXPECT_EQ(list({.model = "opus"}), (std::vector<std::string>{"c", "b"}));
  EXPECT_EQ(list({.status = 429}), (std::vector<std::string>{"b"}));
  EXPECT_EQ(list({.session = "s1"}), (std::vector<std::string>{"c", "a"}));
  EXPECT_EQ(list({.since_ms = kT0 + 100, .until_ms = kT0 + 200}), (std::vector<std::string>{"b"}));
  EXPECT_EQ(list({.user = "alice", .model = "opus"}), (std::vector<std::string>{"c"}));
}

TEST(LogStoreTest, PagesNewestFirstWithStableCursors) {
  Scratch s;
  auto store = openStore(s.db());
  std::vector<RequestRecord> batch;
  // Pairs share a start time, so order within a millisecond comes from insertion order.
  for (int i = 0; i < 25; ++i)
    batch.push_back(rec("r" + std::to_string(i), kT0 + i / 2, "u", {"tag:ci"}, "m"));
  insertAll(*store, batch);
  auto reader = openReader(s.db());

  for (std::string tag : {"", "tag:ci"}) {
    std::vector<std::string> seen;
    ListRequestsQuery q{.filter = {.tag = tag}, .limit = 10};
    int pages = 0;
    for (;;) {
      auto page = reader->listRequests(q);
      ASSERT_TRUE(page) << page.status().message();
      ++pages;
      for (auto& id : ids(*page)) seen.push_back(id);
      if (pages == 1) {
        // Newer records arriving between pages do not shift the next page.
        insertAll(*store, {rec("late" + tag, kT0 + 1000, "u", {"tag:ci"}, "m")});
      }
      if (page->next_cursor.empty()) break;
      q.cursor = page->next_cursor;
    }
    // The second pass also sees the record the first one added.
    std::vector<std::string> expected;
    if (!tag.empty()) expected.push_back("late");
    for (int i = 24; i >= 0; --i) expected.push_back("r" + std::to_string(i));
    EXPECT_EQ(pages, 3);
    EXPECT_EQ(seen, expected);
  }

  auto offset = reader->listRequests({.filter = {.user = "u"}, .limit = 3, .offset = 2});
  ASSERT_TRUE(offset);
  EXPECT_EQ(ids(*offset), (std::vector<std::string>{"r24", "r23", "r22"}));  // after 2 "late"
  EXPECT_EQ(toJson(*offset)["requests"].size(), 3u);
  EXPECT_EQ(reader->listRequests({.cursor = "nope"}).status().code(), EINVAL);
  EXPECT_EQ(reader->listRequests({.cursor = "12.x"}).status().code(), EINVAL);
  auto last = reader->listRequests({.limit = 27});
  ASSERT_TRUE(last);
  EXPECT_EQ(last->records.size(), 27u);
  EXPECT_TRUE(last->next_cursor.empty());
  EXPECT_TRUE(toJson(*last)["next_cursor"].is_null());
}

TEST(LogStoreTest, SessionsGroupByUserAndSessionId) {
  Scratch s;
  auto store = openStore(s.db());
  auto inSession = [](RequestRecord r, std::string session, int64_t input) {
    r.session_id = std::move(session);
    r.tokens.input = input;
    r.cost_nanodollars = input * 10;
    return r;
  };
  insertAll(*store, {inSession(rec("1", kT0, "alice", {}, "m"), "s1", 1),
                     inSession(rec("2", kT0 + 50, "alice", {}, "m"), "s1", 2),
                     inSession(rec("3", kT0 + 10, "mallory", {}, "m"), "s1", 4),  // same id
                     inSession(rec("4", kT0 + 20, "alice", {}, "m"), "s2", 8),
                     inSession(rec("5", kT0 + 90, "alice", {}, "m"), "", 16)});
  auto reader = openReader(s.db());
  auto rows = reader->sessions({});
  ASSERT_TRUE(rows) << rows.status().message();
  ASSERT_EQ(rows->size(), 3u);
  const SessionRow& first = (*rows)[0];
  EXPECT_EQ(first.session_id, "s1");
  EXPECT_EQ(first.user_login, "alice");
  EXPECT_EQ(first.first_ms, kT0);
  EXPECT_EQ(first.last_ms, kT0 + 50);
  EXPECT_EQ(first.totals.requests, 2);
  EXPECT_EQ(first.totals.input, 3);
  EXPECT_EQ(first.totals.cost_nanodollars, 30);
  EXPECT_EQ((*rows)[1].session_id, "s2");
  EXPECT_EQ((*rows)[2].user_login, "mallory");

  auto mine = reader->sessions({.filter = {.user = "mallory"}});
  ASSERT_TRUE(mine);
  ASSERT_EQ(mine->size(), 1u);
  EXPECT_EQ((*mine)[0].totals.input, 4);
  auto paged = reader->sessions({.limit = 1, .offset = 1});
  ASSERT_TRUE(paged);
  ASSERT_EQ(paged->size(), 1u);
  EXPECT_EQ((*paged)[0].session_id, "s2");
  EXPECT_EQ(toJson(*rows)[0]["totals"]["input"], 3);
}

TEST(LogStoreTest, MigratesAnEmptyFileAndReopens) {
  Scratch s;
  { std::ofstream touch(s.db()); }  // an existing, empty file
  ASSERT_EQ(fs::file_size(s.db()), 0u);
  {
    auto store = openStore(s.db());
    ASSERT_TRUE(store);
    EXPECT_EQ(store->schemaVersion(), LogStore::latestSchemaVersion());
    insertAll(*store, {fullRecord()});
  }
  EXPECT_EQ(count(s.db(), "PRAGMA auto_vacuum"), 2);
  EXPECT_EQ(count(s.db(), "PRAGMA user_version"), LogStore::latestSchemaVersion());
  {
    auto store = openStore(s.db());
    ASSERT_TRUE(store);
    EXPECT_EQ(store->schemaVersion(), LogStore::latestSchemaVersion());
    insertAll(*store, {rec("second", kT0, "u", {}, "m")});
  }
  auto reader = openReader(s.db());
  EXPECT_EQ(*reader->getRequest(fullRecord().id, true), fullRecord());
  EXPECT_EQ(reader->listRequests({})->records.size(), 2u);
}

TEST(LogStoreTest, MigratesAVersionThreeFileToTheHookColumn) {
  Scratch s;
  openStore(s.db()).reset();
  sqlite3* db = nullptr;
  sqlite3_open(s.db().c_str(), &db);
  ASSERT_EQ(sqlite3_exec(db, "ALTER TABLE requests DROP COLUMN hook; PRAGMA user_version=3",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  EXPECT_EQ(LogReader::open(s.db()).status().code(), EINVAL);
  auto store = openStore(s.db());
  ASSERT_TRUE(store);
  EXPECT_EQ(store->schemaVersion(), 4);
  insertAll(*store, {fullRecord(), rec("plain", kT0, "u", {}, "m")});
  auto reader = openReader(s.db());
  EXPECT_EQ(reader->getRequest(fullRecord().id, true)->hook, "modify");
  EXPECT_EQ(reader->getRequest("plain", false)->hook, "");
  EXPECT_EQ(toJson(*reader->getRequest(fullRecord().id, false), false)["hook"], "modify");
}

TEST(LogStoreTest, CreatesTheFileOwnerOnly) {
  Scratch s;
  openStore(s.db()).reset();
  auto perms = fs::status(s.db()).permissions();
  EXPECT_EQ(perms & (fs::perms::group_all | fs::perms::others_all), fs::perms::none);
}

TEST(LogStoreTest, RefusesASchemaFromTheFuture) {
  Scratch s;
  std::string created = s.db();
  openStore(created).reset();
  sqlite3* db = nullptr;
  sqlite3_open(created.c_str(), &db);
  sqlite3_exec(db, "PRAGMA user_version=99", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  auto store = LogStore::open(created);
  ASSERT_FALSE(store);
  EXPECT_EQ(store.status().code(), EINVAL);
  EXPECT_NE(store.status().message().find("upgrade gatehouse"), std::string::npos);
  EXPECT_EQ(LogReader::open(created).status().code(), EINVAL);
  EXPECT_EQ(LogReader::open((s.dir / "absent.db").string()).status().code(), ENOENT);
}

}  // namespace
}  // namespace gatehouse::proxy
