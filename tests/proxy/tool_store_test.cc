// Tool calls in the log store: one row per (node, call id) however many turns repeat it, results
// applied once and only to the caller's own calls, every filter of /api/tools (type, name,
// user, tag, session, word prefix of a command, time), stable paging, per-day stats, expiry, and
// migration of a version-1 file.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <nlohmann/json.hpp>

#include "proxy/gateway/tool_records.h"
#include "proxy/logstore/log_query.h"
#include "proxy/logstore/log_store.h"
#include "proxy/tools/tool_tap.h"
#include "tests/proxy/log_test_util.h"

namespace gatehouse::proxy {
namespace {

constexpr int64_t kT0 = 1'740'787'200'000;  // 2025-03-01T00:00:00Z
constexpr int64_t kDay = 24 * 60 * 60 * 1000;

// A Claude Code call as the gateway would record it.
ToolCallRecord claudeCall(const std::string& id, const std::string& name, nlohmann::json args) {
  tools::ToolCall c;
  c.call_id = id;
  c.name = name;
  c.source = "tool_use";
  c.arguments = args.dump();
  tools::normalize(c, tools::Agent::kClaudeCode);
  return toRecord(c);
}

ToolCallRecord shellCall(const std::string& id, const std::string& script) {
  return claudeCall(id, "Bash", {{"command", script}});
}

ToolCallRecord readCall(const std::string& id, const std::string& path) {
  return claudeCall(id, "Read", {{"file_path", path}});
}

RequestRecord request(const std::string& id, int64_t t, const std::string& node,
                      const std::string& user, std::vector<ToolCallRecord> calls,
                      std::vector<ToolResultRecord> results = {},
                      std::vector<std::string> tags = {}, const std::string& session = "s1") {
  RequestRecord r;
  r.id = id;
  r.start_ms = t;
  r.identity.node_id = node;
  r.identity.user_login = user;
  r.identity.tags = std::move(tags);
  r.session_id = session;
  r.status = 200;
  r.tool_calls = std::move(calls);
  r.tool_results = std::move(results);
  return r;
}

std::vector<std::string> callIds(const Result<ToolPage>& page) {
  std::vector<std::string> out;
  EXPECT_TRUE(page) << page.status().message();
  if (!page) return out;
  for (const auto& c : page.value().calls) out.push_back(c.call_id);
  return out;
}

using Ids = std::vector<std::string>;

TEST(ToolStoreTest, OneRowPerCallAndResultsAppliedOnce) {
  Scratch s;
  auto store = openStore(s.db());
  insertAll(*store, {request("r1", kT0, "n1", "alice", {shellCall("t1", "git status && ls")})});
  // Turn 2 repeats t1 in its history (the gateway only records response calls, but a provider
  // could resend an id) and carries its result; turn 3 repeats the result with another status.
  insertAll(*store, {request("r2", kT0 + 1, "n1", "alice", {shellCall("t1", "git status && ls")},
                             {{"t1", "error", 17}})});
  insertAll(*store, {request("r3", kT0 + 2, "n1", "alice", {}, {{"t1", "ok", 99}})});
  EXPECT_EQ(count(s.db(), "SELECT COUNT(*) FROM tool_calls"), 1);
  EXPECT_EQ(count(s.db(), "SELECT COUNT(*) FROM tool_commands"), 2);
  auto reader = openReader(s.db());
  auto page = reader->listTools({});
  ASSERT_TRUE(page);
  ASSERT_EQ(page->calls.size(), 1u);
  const StoredToolCall& c = page->calls[0];
  EXPECT_EQ(c.request_id, "r1");
  EXPECT_EQ(c.time_ms, kT0);
  EXPECT_EQ(c.type, "shell");
  EXPECT_EQ(c.command, "git status && ls");
  EXPECT_EQ(c.result_status, "error");
  EXPECT_EQ(c.result_size, 17);
  EXPECT_EQ(c.result_request_id, "r2");
  nlohmann::json j = toJson(c);
  EXPECT_EQ(j["commands"], nlohmann::json::parse(R"([{"argv":["git","status"]},{"argv":["ls"]}])"));
  EXPECT_EQ(j["identity"]["user_login"], "alice");
  EXPECT_EQ(j["result"], "error");
}

TEST(ToolStoreTest, ResultsOnlyTouchTheSameNodesCalls) {
  Scratch s;
  auto store = openStore(s.db());
  insertAll(*store, {request("r1", kT0, "n1", "alice", {shellCall("same", "ls")}),
                     request("r2", kT0, "n2", "bob", {shellCall("same", "pwd")})});
  insertAll(*store, {request("r3", kT0 + 5, "n2", "bob", {}, {{"same", "error", 1}}),
                     request("r4", kT0 + 6, "n1", "alice", {}, {{"unknown", "ok", 1}})});
  auto reader = openReader(s.db());
  auto alice = reader->listTools({.filter = {.user = "alice"}});
  auto bob = reader->listTools({.filter = {.user = "bob"}});
  ASSERT_TRUE(alice && bob);
  ASSERT_EQ(alice->calls.size(), 1u);
  ASSERT_EQ(bob->calls.size(), 1u);
  EXPECT_EQ(alice->calls[0].result_status, "none");
  EXPECT_EQ(bob->calls[0].result_status, "error");
}

TEST(ToolStoreTest, Filters) {
  Scratch s;
  auto store = openStore(s.db());
  insertAll(*store, {request("r1", kT0, "n1", "alice",
                             {shellCall("a", "git rev-parse HEAD"), readCall("b", "/etc/hosts")},
                             {}, {"tag:ci"}, "sess-1"),
                     request("r2", kT0 + kDay, "n2", "bob",
                             {shellCall("c", "gitk --all"), shellCall("d", "cd x && git status")},
                             {}, {"tag:ci-2"}, "sess-2")});
  auto reader = openReader(s.db());
  EXPECT_EQ(callIds(reader->listTools({})), (Ids{"d", "c", "b", "a"}));
  EXPECT_EQ(callIds(reader->listTools({.filter = {.type = "file_read"}})), (Ids{"b"}));
  EXPECT_EQ(callIds(reader->listTools({.filter = {.name = "Bash"}})), (Ids{"d", "c", "a"}));
  EXPECT_EQ(callIds(reader->listTools({.filter = {.user = "bob"}})), (Ids{"d", "c"}));
  EXPECT_EQ(callIds(reader->listTools({.filter = {.tag = "tag:ci"}})), (Ids{"b", "a"}));
  EXPECT_EQ(callIds(reader->listTools({.filter = {.session = "sess-2"}})), (Ids{"d", "c"}));
  // Word prefixes of any of a call's commands.
  EXPECT_EQ(callIds(reader->listTools({.filter = {.command = "git"}})), (Ids{"d", "a"}));
  EXPECT_EQ(callIds(reader->listTools({.filter = {.command = "git rev-parse"}})), (Ids{"a"}));
  EXPECT_EQ(callIds(reader->listTools({.filter = {.command = "git rev-parse HEAD"}})), (Ids{"a"}));
  EXPECT_EQ(callIds(reader->listTools({.filter = {.command = "gitk"}})), (Ids{"c"}));
  EXPECT_EQ(callIds(reader->listTools({.filter = {.command = "cd"}})), (Ids{"d"}));
  EXPECT_EQ(callIds(reader->listTools({.filter = {.command = "gi"}})), Ids{});
  EXPECT_EQ(callIds(reader->listTools({.filter = {.since_ms = kT0 + 1}})), (Ids{"d", "c"}));
  EXPECT_EQ(callIds(reader->listTools({.filter = {.until_ms = kT0 + 1}})), (Ids{"b", "a"}));
}

TEST(ToolStoreTest, PagesWithStableCursors) {
  Scratch s;
  auto store = openStore(s.db());
  std::vector<RequestRecord> batch;
  for (int i = 0; i < 7; ++i) {
    batch.push_back(request("r" + std::to_string(i), kT0 + i / 2, "n1", "alice",
                            {shellCall("c" + std::to_string(i), "ls")}));
  }
  insertAll(*store, batch);
  auto reader = openReader(s.db());
  Ids seen;
  std::string cursor;
  for (int pages = 0; pages < 10; ++pages) {
    auto page = reader->listTools({.limit = 3, .cursor = cursor});
    ASSERT_TRUE(page);
    for (const auto& c : page->calls) seen.push_back(c.call_id);
    cursor = page->next_cursor;
    if (cursor.empty()) break;
    if (pages == 0)
      insertAll(*store, {request("late", kT0 + 100, "n1", "a", {shellCall("x", "ls")})});
  }
  EXPECT_EQ(seen, (Ids{"c6", "c5", "c4", "c3", "c2", "c1", "c0"}));
  EXPECT_EQ(reader->listTools({.cursor = "nonsense"}).status().code(), EINVAL);
}

TEST(ToolStoreTest, StatsByTypePerUserAndDay) {
  Scratch s;
  auto store = openStore(s.db());
  insertAll(*store,
            {request("r1", kT0, "n1", "alice",
                     {shellCall("a", "ls"), shellCall("b", "pwd"), readCall("c", "x")}),
             request("r2", kT0 + kDay, "n1", "alice", {shellCall("d", "ls")}, {{"a", "error", 3}}),
             request("r3", kT0 + 10, "n2", "bob", {readCall("e", "y")})});
  auto reader = openReader(s.db());
  auto rows = reader->toolStats({});
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 3u);
  EXPECT_EQ((*rows)[0].day, "2025-03-02");
  EXPECT_EQ((*rows)[0].user_login, "alice");
  EXPECT_EQ((*rows)[0].total, 1);
  EXPECT_EQ((*rows)[1].day, "2025-03-01");
  EXPECT_EQ((*rows)[1].user_login, "alice");
  EXPECT_EQ((*rows)[1].by_type, (std::map<std::string, int64_t>{{"file_read", 1}, {"shell", 2}}));
  EXPECT_EQ((*rows)[1].errors, 1);
  EXPECT_EQ((*rows)[2].user_login, "bob");
  auto shell = reader->toolStats({.type = "shell"});
  ASSERT_TRUE(shell);
  EXPECT_EQ(shell->size(), 2u);
  EXPECT_EQ(toJson(*rows)[1]["by_type"]["shell"], 2);
}

TEST(ToolStoreTest, ExpiresToolCallsWithTheirCommands) {
  Scratch s;
  auto store = openStore(s.db());
  insertAll(*store, {request("old", kT0, "n1", "a", {shellCall("o", "ls; pwd")}),
                     request("new", kT0 + kDay, "n1", "a", {shellCall("n", "ls")})});
  auto r = store->expireBefore(kT0 + 1, 100);
  ASSERT_TRUE(r);
  EXPECT_EQ(count(s.db(), "SELECT COUNT(*) FROM tool_calls"), 1);
  EXPECT_EQ(count(s.db(), "SELECT COUNT(*) FROM tool_commands"), 1);
}

TEST(ToolStoreTest, MigratesAVersionOneFile) {
  Scratch s;
  // A version-1 file: today's schema minus what migration 2 adds, with a request in it.
  openStore(s.db()).reset();
  sqlite3* db = nullptr;
  sqlite3_open(s.db().c_str(), &db);
  ASSERT_EQ(
      sqlite3_exec(db,
                   "DROP TABLE tool_commands; DROP TABLE tool_calls; ALTER TABLE requests DROP "
                   "COLUMN hook; PRAGMA user_version=1",
                   nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close(db);
  EXPECT_EQ(count(s.db(), "PRAGMA user_version"), 1);
  // A v2 reader refuses the v1 file until the store has migrated it.
  EXPECT_EQ(LogReader::open(s.db()).status().code(), EINVAL);
  auto store = openStore(s.db());
  ASSERT_TRUE(store);
  EXPECT_EQ(store->schemaVersion(), LogStore::latestSchemaVersion());
  insertAll(*store, {request("r1", kT0, "n1", "a", {shellCall("t", "make -j2")})});
  auto reader = openReader(s.db());
  EXPECT_EQ(callIds(reader->listTools({.filter = {.command = "make"}})), Ids{"t"});
}

TEST(ToolStoreTest, MigratesAVersionTwoFile) {
  Scratch s;
  openStore(s.db()).reset();
  sqlite3* db = nullptr;
  sqlite3_open(s.db().c_str(), &db);
  ASSERT_EQ(sqlite3_exec(db,
                         "ALTER TABLE tool_calls DROP COLUMN guardrail; ALTER TABLE requests DROP "
                         "COLUMN hook; PRAGMA user_version=2",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto store = openStore(s.db());
  ASSERT_TRUE(store);
  EXPECT_EQ(store->schemaVersion(), LogStore::latestSchemaVersion());
  ToolCallRecord c = shellCall("t", "rm -rf /");
  c.guardrail = R"([{"rule":"rm-rf-root","action":"block","enforced":true}])";
  insertAll(*store, {request("r1", kT0, "n1", "a", {c})});
  auto page = openReader(s.db())->listTools({});
  ASSERT_TRUE(page);
  ASSERT_EQ(page->calls.size(), 1u);
  EXPECT_EQ(toJson(page->calls[0])["guardrail"][0]["rule"], "rm-rf-root");
  insertAll(*store, {request("r2", kT0 + 1, "n1", "a", {shellCall("u", "ls")})});
  auto reader = openReader(s.db());
  EXPECT_EQ(callIds(reader->listTools({})), (Ids{"u", "t"}));
  EXPECT_EQ(callIds(reader->listTools({.filter = {.guardrail = "any"}})), Ids{"t"});
  EXPECT_EQ(callIds(reader->listTools({.filter = {.guardrail = "block"}})), Ids{"t"});
  EXPECT_EQ(callIds(reader->listTools({.filter = {.guardrail = "enforced"}})), Ids{"t"});
  EXPECT_EQ(callIds(reader->listTools({.filter = {.guardrail = "flag"}})), Ids{});
}

TEST(ToolStoreTest, RecordsFromATapAndARequest) {
  // The gateway path in small: a streamed Anthropic response, then the next request's result.
  tools::ToolTap tap(ApiKind::kAnthropicMessages, BodyMode::kSse);
  tap.onSseEvent(
      "content_block_start",
      R"({"index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"Bash","input":{}}})");
  tap.onSseEvent(
      "content_block_delta",
      R"({"index":1,"delta":{"type":"input_json_delta","partial_json":"{\"command\":\"cat ./README.md\"}"}})");
  tap.onSseEvent("content_block_stop", R"({"index":1})");
  RequestRecord r1 = request("r1", kT0, "n1", "alice", {});
  addToolRecords(tap.finish(), ApiKind::kAnthropicMessages, R"({"messages":[]})", r1);
  ASSERT_EQ(r1.tool_calls.size(), 1u);
  EXPECT_EQ(r1.tool_calls[0].command_lines, std::vector<std::string>{"cat ./README.md"});
  RequestRecord r2 = request("r2", kT0 + 1, "n1", "alice", {});
  addToolRecords({}, ApiKind::kAnthropicMessages,
                 R"({"messages":[{"role":"user","content":[{"type":"tool_result",
                     "tool_use_id":"toolu_1","content":"hello"}]}]})",
                 r2);
  // Read later, on the writer thread: the record carries the body and its API.
  ASSERT_TRUE(r2.tool_result_source);
  EXPECT_EQ(r2.tool_result_source->api_kind, "anthropic.messages");
  EXPECT_FALSE(r1.tool_result_source) << "no result marker: nothing to read, nothing copied";
  // A call without an id gets one from the request.
  tools::ToolCall anonymous;
  anonymous.name = "x";
  RequestRecord r3 = request("r3", kT0 + 2, "n1", "alice", {});
  addToolRecords({anonymous}, ApiKind::kOpenAiChat, "{}", r3);
  EXPECT_EQ(r3.tool_calls[0].call_id, "r3#0");

  // The gateway logs the request body whole: the source points at it instead of a copy.
  RequestRecord r4 = request("r4", kT0 + 3, "n1", "alice", {shellCall("toolu_9", "ls")});
  std::string logged = R"({"messages":[{"role":"user","content":[{"type":"tool_result",
      "tool_use_id":"toolu_9","content":"abc"}]}]})";
  addToolRecords({}, ApiKind::kAnthropicMessages, logged, r4, nullptr, {}, true);
  ASSERT_TRUE(r4.tool_result_source);
  EXPECT_TRUE(r4.tool_result_source->in_request_body);
  EXPECT_EQ(r4.tool_result_source->body, "");
  r4.request_body = logged;

  Scratch s;
  auto store = openStore(s.db());
  insertAll(*store, {r1, r2, r3, r4});
  auto reader = openReader(s.db());
  auto page = reader->listTools({.filter = {.command = "cat"}});
  ASSERT_TRUE(page);
  ASSERT_EQ(page->calls.size(), 1u);
  EXPECT_EQ(page->calls[0].result_status, "ok");
  EXPECT_EQ(page->calls[0].result_size, 5);
  page = reader->listTools({.filter = {.command = "ls"}});
  ASSERT_TRUE(page);
  ASSERT_EQ(page->calls.size(), 1u);
  EXPECT_EQ(page->calls[0].result_status, "ok");
  EXPECT_EQ(page->calls[0].result_size, 3);
}

}  // namespace
}  // namespace gatehouse::proxy
