// The SQLite store: migrations, persistence across reopen, file modes, auth key hashing, and
// addresses that survive a server restart.
#include "control/store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>

#include "tests/control/control_harness.h"

namespace gatehouse::control {
namespace {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/gatehouse-store-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const char* name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

TEST(StoreTest, MigratesAndPersistsAcrossReopen) {
  TempDir dir;
  std::string db = dir.file("state.db");
  std::string error;
  {
    auto s = Store::open(db, &error);
    ASSERT_TRUE(s) << error;
    EXPECT_EQ(s->schemaVersion(), Store::latestSchemaVersion());
    ASSERT_TRUE(s->createUser("alice@example.com", "Alice", 1, &error)) << error;
    EXPECT_FALSE(s->createUser("alice@example.com", "Again", 1, &error));
    EXPECT_EQ(error, "user alice@example.com already exists");
    auto k = s->createAuthKey("ghauth-secret", 1, true, false, {"tag:ci"}, 0, 1, &error);
    ASSERT_TRUE(k) << error;
    EXPECT_EQ(k->prefix, "ghauth-secre");
  }
  struct stat st;
  ASSERT_EQ(stat(db.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto s = Store::open(db, &error);
  ASSERT_TRUE(s) << error;
  EXPECT_EQ(s->schemaVersion(), Store::latestSchemaVersion());
  ASSERT_EQ(s->listUsers().size(), 1u);
  EXPECT_EQ(s->listUsers()[0].display_name, "Alice");
  auto k = s->authKeyBySecret("ghauth-secret");
  ASSERT_TRUE(k);
  EXPECT_EQ(k->tags, std::vector<std::string>{"tag:ci"});
  EXPECT_TRUE(k->reusable);
  EXPECT_FALSE(s->authKeyBySecret("ghauth-secreT"));
}

TEST(StoreTest, AuthKeysAreStoredHashed) {
  TempDir dir;
  std::string db = dir.file("state.db");
  std::string error;
  {
    auto s = Store::open(db, &error);
    ASSERT_TRUE(s->createUser("a@x", "", 1, &error));
    ASSERT_TRUE(
        s->createAuthKey("ghauth-0123456789abcdefSECRETPART", 1, false, false, {}, 0, 1, &error));
  }
  std::string bytes;
  for (const char* f : {"state.db", "state.db-wal"}) {
    FILE* fp = fopen(dir.file(f).c_str(), "rb");
    if (!fp) continue;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, fp)) > 0) bytes.append(buf, n);
    fclose(fp);
  }
  EXPECT_EQ(bytes.find("SECRETPART"), std::string::npos);
}

TEST(StoreTest, RefusesANewerSchema) {
  TempDir dir;
  std::string db = dir.file("state.db");
  std::string error;
  { ASSERT_TRUE(Store::open(db, &error)); }
  {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(db.c_str(), &raw), SQLITE_OK);
    sqlite3_exec(raw, "PRAGMA user_version=99", nullptr, nullptr, nullptr);
    sqlite3_close(raw);
  }
  EXPECT_FALSE(Store::open(db, &error));
  EXPECT_NE(error.find("newer than this binary"), std::string::npos);
}

TEST(StoreTest, AddressesAndIdsAreStableAcrossServerRestart) {
  TempDir dir;
  std::string db = dir.file("state.db");
  std::string error;
  wg::FakeRandom random(5);
  auto server_key = testing::keyPair(random);
  auto machine = testing::keyPair(random);
  auto node = testing::keyPair(random);
  std::string key;
  std::string first_addrs;
  wg::Now now{wg::kSec, int64_t{1700000000} * wg::kSec};
  for (int run = 0; run < 2; ++run) {
    auto store = Store::open(db, &error);
    ASSERT_TRUE(store) << error;
    ServerCore server(*store, server_key, random, {}, nullptr, now);
    ASSERT_TRUE(server.setPolicy(testing::kTestPolicy).empty());
    if (run == 0) {
      server.admin({{"cmd", "users.create"}, {"login", "alice@example.com"}}, now);
      // Someone else first, so the address is not trivially the first.
      key =
          server.admin({{"cmd", "keys.create"}, {"user", "alice@example.com"}, {"reusable", true}},
                       now)["secret"];
    }
    ClientOptions o;
    o.server_public = server_key.pub;
    o.auth_key = key;
    o.hostname = "laptop";
    ClientCore client(machine, node.priv, o, random);
    auto conn = server.accept(now);
    client.dialing(now);
    client.connected(now);
    for (int i = 0; i < 10; ++i) {
      std::string out = client.takeOutput();
      server.receive(conn, {reinterpret_cast<const uint8_t*>(out.data()), out.size()}, now);
      server.tick(now);
      for (auto& o2 : server.takeOutputs()) {
        client.received({reinterpret_cast<const uint8_t*>(o2.bytes.data()), o2.bytes.size()}, now);
      }
    }
    ASSERT_TRUE(client.hasMap());
    std::string addrs = client.map().self.addresses(0) + " " + client.map().self.addresses(1);
    EXPECT_EQ(client.map().self.hostname(), "laptop");  // its own name, not laptop-2
    if (run == 0) {
      first_addrs = addrs;
      EXPECT_EQ(addrs.rfind("100.64.0.1/32 fd", 0), 0u) << addrs;
    } else {
      EXPECT_EQ(addrs, first_addrs);
    }
    EXPECT_EQ(client.nodeId(), 1u);
  }
}

}  // namespace
}  // namespace gatehouse::control
