// Control state in SQLite (WAL): users, pre-auth keys, nodes and server metadata (the server's
// static key and the IPv6 ULA /48). Schema migrations live in one versioned list in store.cc and
// run at open (PRAGMA user_version).
//
// Thread safety: a Store is used from one thread (the server loop). Ownership: the Store owns the
// sqlite3 handle. Errors are values: every call returns a StoreError-carrying result; nothing
// throws. Times are Unix seconds passed in by the caller (no clock inside).
//
// Secrets: auth keys are stored as a BLAKE2b hash (libsodium crypto_generichash); the plaintext
// is returned once by createAuthKey. The database file is created 0600 (SQLite gives its -wal and
// -shm files the same mode).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wg/crypto/blake2s.h"
#include "wg/net/addr.h"

struct sqlite3;

namespace gatehouse::control {

struct UserRecord {
  int64_t id = 0;
  std::string login;
  std::string display_name;
  int64_t created = 0;
};

struct AuthKeyRecord {
  int64_t id = 0;
  std::string prefix;  // first characters of the key, for listings (not secret enough to use)
  int64_t user_id = 0;
  std::string user_login;
  bool reusable = false;
  bool ephemeral = false;
  std::vector<std::string> tags;
  int64_t expires = 0;  // 0 = never
  bool revoked = false;
  int64_t uses = 0;
  int64_t created = 0;
};

struct NodeRecord {
  int64_t id = 0;
  wg::crypto::Key32 machine_key{};
  wg::crypto::Key32 node_key{};
  std::string hostname;
  int64_t user_id = 0;
  std::string user_login;  // filled by reads
  std::vector<std::string> tags;
  uint32_t ipv4 = 0;  // host order, in 100.64.0.0/10
  wg::IpAddr ipv6;
  int64_t key_expiry = 0;  // 0 = never
  bool ephemeral = false;
  int64_t auth_key_id = 0;
  int64_t created = 0;
  int64_t last_seen = 0;

  wg::IpAddr ipv4Addr() const;
};

class Store {
 public:
  // Opens (creating 0600) and migrates. ":memory:" gives a private in-memory store for tests.
  static std::optional<Store> open(const std::string& path, std::string* error);
  Store(Store&&) noexcept;
  Store& operator=(Store&&) = delete;
  ~Store();

  int schemaVersion() const;
  static int latestSchemaVersion();

  // Metadata (small blobs): "server_private_key", "ula_prefix".
  std::optional<std::string> getMeta(std::string_view key);
  bool setMeta(std::string_view key, std::string_view value);
  // The ULA /48 for IPv6 addresses, generated from `random48` (6 bytes) on first use.
  wg::IpPrefix ulaPrefix(const uint8_t random48[6]);

  // Users.
  std::optional<UserRecord> createUser(const std::string& login, const std::string& display_name,
                                       int64_t now, std::string* error);
  std::vector<UserRecord> listUsers();
  std::optional<UserRecord> userByLogin(std::string_view login);
  std::optional<UserRecord> userById(int64_t id);

  // Pre-auth keys. createAuthKey stores the hash of `secret_key` (which the caller generated and
  // shows once).
  std::optional<AuthKeyRecord> createAuthKey(const std::string& secret_key, int64_t user_id,
                                             bool reusable, bool ephemeral,
                                             const std::vector<std::string>& tags, int64_t expires,
                                             int64_t now, std::string* error);
  std::optional<AuthKeyRecord> authKeyBySecret(std::string_view secret_key);
  std::optional<AuthKeyRecord> authKeyById(int64_t id);
  std::vector<AuthKeyRecord> listAuthKeys();
  bool revokeAuthKey(int64_t id);
  bool markAuthKeyUsed(int64_t id);

  // Nodes.
  std::vector<NodeRecord> listNodes();
  std::optional<NodeRecord> nodeByMachineKey(const wg::crypto::Key32& machine_key);
  // Inserts (id = 0 → assigned) or updates by id. Returns the id, or 0 with *error.
  int64_t saveNode(const NodeRecord& node, std::string* error);
  bool deleteNode(int64_t id);
  bool touchNode(int64_t id, int64_t last_seen);
  // Lowest free host in 100.64.0.0/10 (excluding .0 and broadcast-like ends), 0 when exhausted.
  uint32_t nextFreeIpv4();

 private:
  explicit Store(sqlite3* db) : db_(db) {}
  bool exec(const char* sql, std::string* error);
  bool migrate(std::string* error);

  sqlite3* db_ = nullptr;
};

// BLAKE2b-256 of an auth key (what the store keeps).
std::string hashAuthKey(std::string_view secret_key);

}  // namespace gatehouse::control
