#include "control/store.h"

#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cstring>
#include <nlohmann/json.hpp>

namespace gatehouse::control {
namespace {

// The schema, one entry per version. Append only: a released entry never changes.
const char* const kMigrations[] = {
    // 1: users, pre-auth keys, nodes, metadata.
    R"sql(
    CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
    CREATE TABLE users (
      id INTEGER PRIMARY KEY,
      login TEXT NOT NULL UNIQUE,
      display_name TEXT NOT NULL,
      created INTEGER NOT NULL);
    CREATE TABLE auth_keys (
      id INTEGER PRIMARY KEY,
      hash BLOB NOT NULL UNIQUE,
      prefix TEXT NOT NULL,
      user_id INTEGER NOT NULL REFERENCES users(id),
      reusable INTEGER NOT NULL,
      ephemeral INTEGER NOT NULL,
      tags TEXT NOT NULL,
      expires INTEGER NOT NULL,
      revoked INTEGER NOT NULL DEFAULT 0,
      uses INTEGER NOT NULL DEFAULT 0,
      created INTEGER NOT NULL);
    CREATE TABLE nodes (
      id INTEGER PRIMARY KEY,
      machine_key BLOB NOT NULL UNIQUE,
      node_key BLOB NOT NULL,
      hostname TEXT NOT NULL UNIQUE,
      user_id INTEGER NOT NULL REFERENCES users(id),
      tags TEXT NOT NULL,
      ipv4 INTEGER NOT NULL UNIQUE,
      ipv6 BLOB NOT NULL UNIQUE,
      key_expiry INTEGER NOT NULL,
      ephemeral INTEGER NOT NULL,
      auth_key_id INTEGER NOT NULL,
      created INTEGER NOT NULL,
      last_seen INTEGER NOT NULL);
    )sql",
};

constexpr uint32_t kCgnatBase = (100u << 24) | (64u << 16);  // 100.64.0.0/10
constexpr uint32_t kCgnatSize = 1u << 22;

class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) { sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt& bind(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Stmt& bind(int i, std::string_view v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& blob(int i, const void* p, size_t n) {
    sqlite3_bind_blob(s_, i, p, static_cast<int>(n), SQLITE_TRANSIENT);
    return *this;
  }
  bool row() { return s_ && sqlite3_step(s_) == SQLITE_ROW; }
  bool done() { return s_ && sqlite3_step(s_) == SQLITE_DONE; }
  int64_t i64(int c) { return sqlite3_column_int64(s_, c); }
  std::string text(int c) {
    auto* p = sqlite3_column_text(s_, c);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(s_, c)) : "";
  }
  std::string bytes(int c) {
    auto* p = static_cast<const char*>(sqlite3_column_blob(s_, c));
    return p ? std::string(p, sqlite3_column_bytes(s_, c)) : "";
  }

 private:
  sqlite3_stmt* s_ = nullptr;
};

std::string tagsJson(const std::vector<std::string>& tags) { return nlohmann::json(tags).dump(); }

std::vector<std::string> tagsFromJson(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  std::vector<std::string> out;
  if (j.is_array()) {
    for (const auto& t : j) {
      if (t.is_string()) out.push_back(t.get<std::string>());
    }
  }
  return out;
}

wg::crypto::Key32 keyFrom(const std::string& b) {
  wg::crypto::Key32 k{};
  if (b.size() == k.size()) std::memcpy(k.data(), b.data(), k.size());
  return k;
}

const char* kAuthKeyColumns =
    "SELECT k.id, k.prefix, k.user_id, u.login, k.reusable, k.ephemeral, k.tags, k.expires, "
    "k.revoked, k.uses, k.created FROM auth_keys k JOIN users u ON u.id = k.user_id ";

AuthKeyRecord readAuthKey(Stmt& s) {
  AuthKeyRecord k;
  k.id = s.i64(0);
  k.prefix = s.text(1);
  k.user_id = s.i64(2);
  k.user_login = s.text(3);
  k.reusable = s.i64(4) != 0;
  k.ephemeral = s.i64(5) != 0;
  k.tags = tagsFromJson(s.text(6));
  k.expires = s.i64(7);
  k.revoked = s.i64(8) != 0;
  k.uses = s.i64(9);
  k.created = s.i64(10);
  return k;
}

const char* kNodeColumns =
    "SELECT n.id, n.machine_key, n.node_key, n.hostname, n.user_id, u.login, n.tags, n.ipv4, "
    "n.ipv6, n.key_expiry, n.ephemeral, n.auth_key_id, n.created, n.last_seen FROM nodes n "
    "JOIN users u ON u.id = n.user_id ";

NodeRecord readNode(Stmt& s) {
  NodeRecord n;
  n.id = s.i64(0);
  n.machine_key = keyFrom(s.bytes(1));
  n.node_key = keyFrom(s.bytes(2));
  n.hostname = s.text(3);
  n.user_id = s.i64(4);
  n.user_login = s.text(5);
  n.tags = tagsFromJson(s.text(6));
  n.ipv4 = static_cast<uint32_t>(s.i64(7));
  std::string v6 = s.bytes(8);
  if (v6.size() == 16) n.ipv6 = wg::IpAddr::v6(reinterpret_cast<const uint8_t*>(v6.data()));
  n.key_expiry = s.i64(9);
  n.ephemeral = s.i64(10) != 0;
  n.auth_key_id = s.i64(11);
  n.created = s.i64(12);
  n.last_seen = s.i64(13);
  return n;
}

std::string lastError(sqlite3* db) { return sqlite3_errmsg(db); }

}  // namespace

wg::IpAddr NodeRecord::ipv4Addr() const {
  uint8_t b[4] = {uint8_t(ipv4 >> 24), uint8_t(ipv4 >> 16), uint8_t(ipv4 >> 8), uint8_t(ipv4)};
  return wg::IpAddr::v4(b);
}

std::string hashAuthKey(std::string_view secret_key) {
  unsigned char out[32];
  crypto_generichash(out, sizeof out, reinterpret_cast<const unsigned char*>(secret_key.data()),
                     secret_key.size(), nullptr, 0);
  return std::string(reinterpret_cast<char*>(out), sizeof out);
}

std::optional<Store> Store::open(const std::string& path, std::string* error) {
  if (path != ":memory:") {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      *error = path + ": cannot create the state database: " + std::strerror(errno);
      return std::nullopt;
    }
    ::close(fd);
  }
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    *error = path + ": " + (db ? lastError(db) : "cannot open");
    sqlite3_close(db);
    return std::nullopt;
  }
  Store store(db);
  if (!store.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
                  "PRAGMA busy_timeout=5000;",
                  error) ||
      !store.migrate(error)) {
    *error = path + ": " + *error;
    return std::nullopt;
  }
  return store;
}

Store::Store(Store&& o) noexcept : db_(o.db_) { o.db_ = nullptr; }
Store::~Store() { sqlite3_close(db_); }

bool Store::exec(const char* sql, std::string* error) {
  char* msg = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
    if (error) *error = msg ? msg : "sqlite error";
    sqlite3_free(msg);
    return false;
  }
  return true;
}

int Store::latestSchemaVersion() { return static_cast<int>(std::size(kMigrations)); }

int Store::schemaVersion() const {
  Stmt s(db_, "PRAGMA user_version");
  return s.row() ? static_cast<int>(s.i64(0)) : -1;
}

bool Store::migrate(std::string* error) {
  int have = schemaVersion();
  if (have > latestSchemaVersion()) {
    *error = "schema version " + std::to_string(have) + " is newer than this binary (" +
             std::to_string(latestSchemaVersion()) + "); upgrade gatehouse";
    return false;
  }
  for (int v = have; v < latestSchemaVersion(); ++v) {
    std::string sql = std::string("BEGIN;") + kMigrations[v] +
                      "PRAGMA user_version=" + std::to_string(v + 1) + "; COMMIT;";
    if (!exec(sql.c_str(), error)) {
      exec("ROLLBACK;", nullptr);
      *error = "migration to schema " + std::to_string(v + 1) + " failed: " + *error;
      return false;
    }
  }
  return true;
}

std::optional<std::string> Store::getMeta(std::string_view key) {
  Stmt s(db_, "SELECT value FROM meta WHERE key = ?");
  s.bind(1, key);
  if (!s.row()) return std::nullopt;
  return s.bytes(0);
}

bool Store::setMeta(std::string_view key, std::string_view value) {
  Stmt s(db_,
         "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET "
         "value = excluded.value");
  s.bind(1, key).blob(2, value.data(), value.size());
  return s.done();
}

wg::IpPrefix Store::ulaPrefix(const uint8_t random48[6]) {
  auto have = getMeta("ula_prefix");
  uint8_t b[16] = {};
  if (have && have->size() == 6) {
    std::memcpy(b, have->data(), 6);
  } else {
    std::memcpy(b, random48, 6);
    b[0] = 0xfd;  // RFC 4193: fd00::/8 + 40-bit global id
    setMeta("ula_prefix", std::string_view(reinterpret_cast<char*>(b), 6));
  }
  return wg::IpPrefix{wg::IpAddr::v6(b), 48};
}

std::optional<UserRecord> Store::createUser(const std::string& login,
                                            const std::string& display_name, int64_t now,
                                            std::string* error) {
  Stmt s(db_, "INSERT INTO users(login, display_name, created) VALUES(?, ?, ?)");
  s.bind(1, login).bind(2, display_name.empty() ? login : display_name).bind(3, now);
  if (!s.done()) {
    *error = userByLogin(login) ? "user " + login + " already exists" : lastError(db_);
    return std::nullopt;
  }
  return userById(sqlite3_last_insert_rowid(db_));
}

std::vector<UserRecord> Store::listUsers() {
  std::vector<UserRecord> out;
  Stmt s(db_, "SELECT id, login, display_name, created FROM users ORDER BY id");
  while (s.row()) out.push_back({s.i64(0), s.text(1), s.text(2), s.i64(3)});
  return out;
}

std::optional<UserRecord> Store::userByLogin(std::string_view login) {
  Stmt s(db_, "SELECT id, login, display_name, created FROM users WHERE login = ?");
  s.bind(1, login);
  if (!s.row()) return std::nullopt;
  return UserRecord{s.i64(0), s.text(1), s.text(2), s.i64(3)};
}

std::optional<UserRecord> Store::userById(int64_t id) {
  Stmt s(db_, "SELECT id, login, display_name, created FROM users WHERE id = ?");
  s.bind(1, id);
  if (!s.row()) return std::nullopt;
  return UserRecord{s.i64(0), s.text(1), s.text(2), s.i64(3)};
}

std::optional<AuthKeyRecord> Store::createAuthKey(const std::string& secret_key, int64_t user_id,
                                                  bool reusable, bool ephemeral,
                                                  const std::vector<std::string>& tags,
                                                  int64_t expires, int64_t now,
                                                  std::string* error) {
  std::string hash = hashAuthKey(secret_key);
  Stmt s(db_,
         "INSERT INTO auth_keys(hash, prefix, user_id, reusable, ephemeral, tags, expires, "
         "created) VALUES(?, ?, ?, ?, ?, ?, ?, ?)");
  s.blob(1, hash.data(), hash.size())
      .bind(2, secret_key.substr(0, 12))
      .bind(3, user_id)
      .bind(4, reusable)
      .bind(5, ephemeral)
      .bind(6, tagsJson(tags))
      .bind(7, expires)
      .bind(8, now);
  if (!s.done()) {
    *error = lastError(db_);
    return std::nullopt;
  }
  return authKeyById(sqlite3_last_insert_rowid(db_));
}

std::optional<AuthKeyRecord> Store::authKeyBySecret(std::string_view secret_key) {
  std::string hash = hashAuthKey(secret_key);
  Stmt s(db_, (std::string(kAuthKeyColumns) + "WHERE k.hash = ?").c_str());
  s.blob(1, hash.data(), hash.size());
  if (!s.row()) return std::nullopt;
  return readAuthKey(s);
}

std::optional<AuthKeyRecord> Store::authKeyById(int64_t id) {
  Stmt s(db_, (std::string(kAuthKeyColumns) + "WHERE k.id = ?").c_str());
  s.bind(1, id);
  if (!s.row()) return std::nullopt;
  return readAuthKey(s);
}

std::vector<AuthKeyRecord> Store::listAuthKeys() {
  std::vector<AuthKeyRecord> out;
  Stmt s(db_, (std::string(kAuthKeyColumns) + "ORDER BY k.id").c_str());
  while (s.row()) out.push_back(readAuthKey(s));
  return out;
}

bool Store::revokeAuthKey(int64_t id) {
  Stmt s(db_, "UPDATE auth_keys SET revoked = 1 WHERE id = ?");
  s.bind(1, id);
  return s.done() && sqlite3_changes(db_) == 1;
}

bool Store::markAuthKeyUsed(int64_t id) {
  Stmt s(db_, "UPDATE auth_keys SET uses = uses + 1 WHERE id = ?");
  s.bind(1, id);
  return s.done();
}

std::vector<NodeRecord> Store::listNodes() {
  std::vector<NodeRecord> out;
  Stmt s(db_, (std::string(kNodeColumns) + "ORDER BY n.id").c_str());
  while (s.row()) out.push_back(readNode(s));
  return out;
}

std::optional<NodeRecord> Store::nodeByMachineKey(const wg::crypto::Key32& machine_key) {
  Stmt s(db_, (std::string(kNodeColumns) + "WHERE n.machine_key = ?").c_str());
  s.blob(1, machine_key.data(), machine_key.size());
  if (!s.row()) return std::nullopt;
  return readNode(s);
}

int64_t Store::saveNode(const NodeRecord& n, std::string* error) {
  const char* sql =
      n.id == 0 ? "INSERT INTO nodes(machine_key, node_key, hostname, user_id, tags, ipv4, ipv6, "
                  "key_expiry, ephemeral, auth_key_id, created, last_seen) "
                  "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                : "UPDATE nodes SET machine_key = ?1, node_key = ?2, hostname = ?3, user_id = ?4, "
                  "tags = ?5, ipv4 = ?6, ipv6 = ?7, key_expiry = ?8, ephemeral = ?9, "
                  "auth_key_id = ?10, created = ?11, last_seen = ?12 WHERE id = ?13";
  Stmt s(db_, sql);
  s.blob(1, n.machine_key.data(), 32)
      .blob(2, n.node_key.data(), 32)
      .bind(3, n.hostname)
      .bind(4, n.user_id)
      .bind(5, tagsJson(n.tags))
      .bind(6, int64_t{n.ipv4})
      .blob(7, n.ipv6.bytes.data(), 16)
      .bind(8, n.key_expiry)
      .bind(9, n.ephemeral)
      .bind(10, n.auth_key_id)
      .bind(11, n.created)
      .bind(12, n.last_seen);
  if (n.id != 0) s.bind(13, n.id);
  if (!s.done()) {
    *error = lastError(db_);
    return 0;
  }
  return n.id != 0 ? n.id : sqlite3_last_insert_rowid(db_);
}

bool Store::deleteNode(int64_t id) {
  Stmt s(db_, "DELETE FROM nodes WHERE id = ?");
  s.bind(1, id);
  return s.done() && sqlite3_changes(db_) == 1;
}

bool Store::touchNode(int64_t id, int64_t last_seen) {
  Stmt s(db_, "UPDATE nodes SET last_seen = ? WHERE id = ?");
  s.bind(1, last_seen).bind(2, id);
  return s.done();
}

uint32_t Store::nextFreeIpv4() {
  // Next after the highest in use, else the lowest gap (after deletions wrapped the range).
  Stmt s(db_, "SELECT MAX(ipv4) FROM nodes");
  uint32_t next = kCgnatBase + 1;
  if (s.row() && s.i64(0) != 0) next = static_cast<uint32_t>(s.i64(0)) + 1;
  if (next < kCgnatBase + kCgnatSize - 1) return next;
  Stmt gap(db_,
           "SELECT a.ipv4 + 1 FROM nodes a WHERE NOT EXISTS "
           "(SELECT 1 FROM nodes b WHERE b.ipv4 = a.ipv4 + 1) ORDER BY a.ipv4 LIMIT 1");
  if (gap.row()) {
    uint32_t v = static_cast<uint32_t>(gap.i64(0));
    if (v < kCgnatBase + kCgnatSize - 1) return v;
  }
  return 0;
}

}  // namespace gatehouse::control
