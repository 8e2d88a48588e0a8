// Helpers shared by the log store tests: a scratch directory per test, opening a store and a
// reader with the failure reported, inserting a batch, and one-value SQL on the raw file.
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "proxy/logstore/log_query.h"
#include "proxy/logstore/log_store.h"

namespace gatehouse::proxy {

namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards.
struct Scratch {
  fs::path dir;
  Scratch() {
    std::string tmpl = (fs::temp_directory_path() / "gatehouse-logstore-XXXXXX").string();
    dir = mkdtemp(tmpl.data());
  }
  ~Scratch() { fs::remove_all(dir); }
  std::string db() const { return (dir / "requests.db").string(); }
};

inline std::unique_ptr<LogStore> openStore(const std::string& path) {
  auto store = LogStore::open(path);
  EXPECT_TRUE(store) << store.status().message();
  return store ? std::move(*store) : nullptr;
}

inline std::unique_ptr<LogReader> openReader(const std::string& path) {
  auto reader = LogReader::open(path);
  EXPECT_TRUE(reader) << reader.status().message();
  return reader ? std::move(*reader) : nullptr;
}

inline void insertAll(LogStore& store, const std::vector<RequestRecord>& records) {
  auto r = store.insert(records);
  ASSERT_TRUE(r) << r.status().message();
  ASSERT_EQ(r->inserted, records.size());
}

inline int64_t count(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr);
  int64_t n = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
  sqlite3_finalize(s);
  sqlite3_close(db);
  return n;
}

}  // namespace gatehouse::proxy
