#include "proxy/logstore/log_db.h"

#include <fcntl.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <memory>
#include <nlohmann/json.hpp>

namespace gatehouse::proxy::logstore {
namespace {

// Length of the well-formed UTF-8 sequence starting at bytes[i], or 0 when there is none.
// Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8 (the JSON
// encoder rejects them).
size_t utf8SequenceLength(std::string_view bytes, size_t i) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  unsigned char c = p[i];
  if (c < 0x80) return 1;
  size_t len;
  uint32_t cp;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2, cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3, cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4, cp = c & 0x07;
  } else {
    return 0;
  }
  if (bytes.size() - i < len) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((p[i + k] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (p[i + k] & 0x3f);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
      (cp >= 0xd800 && cp <= 0xdfff)) {
    return 0;
  }
  return len;
}

}  // namespace

SqlStmt::SqlStmt(sqlite3* db, std::string_view sql) : db_(db) {
  int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr);
  if (rc != SQLITE_OK) status_ = sqlStatus(db, rc, "prepare");
}

SqlStmt::~SqlStmt() { sqlite3_finalize(stmt_); }

SqlStmt& SqlStmt::bind(int i, int64_t v) {
  sqlite3_bind_int64(stmt_, i, v);
  return *this;
}

SqlStmt& SqlStmt::bind(int i, std::optional<int64_t> v) { return v ? bind(i, *v) : bindNull(i); }

SqlStmt& SqlStmt::bindText(int i, std::string_view v) {
  sqlite3_bind_text64(stmt_, i, v.data(), v.size(), copy_values_ ? SQLITE_TRANSIENT : SQLITE_STATIC,
                      SQLITE_UTF8);
  return *this;
}

SqlStmt& SqlStmt::bindBlob(int i, std::string_view v) {
  // A zero-length blob must still be a blob, not NULL: NULL means "no body captured".
  if (v.empty()) {
    sqlite3_bind_zeroblob(stmt_, i, 0);
  } else {
    sqlite3_bind_blob64(stmt_, i, v.data(), v.size(),
                        copy_values_ ? SQLITE_TRANSIENT : SQLITE_STATIC);
  }
  return *this;
}

SqlStmt& SqlStmt::bindNull(int i) {
  sqlite3_bind_null(stmt_, i);
  return *this;
}

int SqlStmt::step() { return stmt_ ? sqlite3_step(stmt_) : SQLITE_MISUSE; }

Status SqlStmt::run(std::string_view what) {
  if (!status_) return status_;
  int rc = step();
  return rc == SQLITE_DONE ? Status::ok() : stepStatus(rc, what);
}

Status SqlStmt::stepStatus(int rc, std::string_view what) const { return sqlStatus(db_, rc, what); }

void SqlStmt::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

bool SqlStmt::isNull(int c) const { return sqlite3_column_type(stmt_, c) == SQLITE_NULL; }

int64_t SqlStmt::i64(int c) const { return sqlite3_column_int64(stmt_, c); }

std::optional<int64_t> SqlStmt::optI64(int c) const {
  if (isNull(c)) return std::nullopt;
  return i64(c);
}

std::string SqlStmt::text(int c) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, c));
  return p ? std::string(p, sqlite3_column_bytes(stmt_, c)) : std::string();
}

std::optional<std::string> SqlStmt::optBlob(int c) const {
  if (isNull(c)) return std::nullopt;
  const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, c));
  return p ? std::string(p, sqlite3_column_bytes(stmt_, c)) : std::string();
}

Status sqlStatus(sqlite3* db, int rc, std::string_view what) {
  int code;
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      code = EBUSY;
      break;
    case SQLITE_FULL:
      code = ENOSPC;
      break;
    case SQLITE_CONSTRAINT:
      code = EEXIST;
      break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      code = EILSEQ;
      break;
    default:
      code = EIO;
  }
  std::string message = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  return Status(code, std::string(what) + ": " + message);
}

Status sqlExec(sqlite3* db, const std::string& sql) {
  char* message = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
  if (rc == SQLITE_OK) return Status::ok();
  Status s = sqlStatus(db, rc, message ? message : "exec");
  sqlite3_free(message);
  return s;
}

Result<std::string> sqlQueryText(sqlite3* db, const std::string& sql) {
  SqlStmt s(db, sql);
  if (!s.status()) return s.status();
  int rc = s.step();
  if (rc == SQLITE_ROW) return s.text(0);
  if (rc == SQLITE_DONE) return std::string();
  return s.stepStatus(rc, sql);
}

Result<sqlite3*> sqlOpen(const std::string& path, bool create, int busy_timeout_ms) {
  if (create) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return Status::fromErrno(errno, path + ": cannot create the request log");
    ::close(fd);
  }
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr);
  if (rc != SQLITE_OK) {
    Status s = sqlStatus(db, rc, path);
    sqlite3_close(db);
    return s;
  }
  sqlite3_busy_timeout(db, busy_timeout_ms);
  return db;
}

constexpr size_t kSmallBodyBytes = 1024;

Result<std::string> compressBody(std::string_view raw, int level) {
  // One compression context per thread (the writer's), reused: ZSTD_compress would set up and
  // tear down a context for every body, a measurable share of the gateway's CPU per request.
  struct FreeCctx {
    void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
  };
  thread_local std::unique_ptr<ZSTD_CCtx, FreeCctx> cctx(ZSTD_createCCtx());
  if (!cctx) return Status(ENOMEM, "zstd: cannot create a compression context");
  // Under 1 KiB a frame's fixed costs (entropy tables) dominate: level 3 takes ~4-5 µs to save
  // a few dozen bytes, zstd's fast level -1 ~0.5-2 µs. Larger bodies get the configured level.
  if (raw.size() < kSmallBodyBytes) level = std::min(level, -1);
  std::string out(ZSTD_compressBound(raw.size()), '\0');
  size_t n = ZSTD_compressCCtx(cctx.get(), out.data(), out.size(), raw.data(), raw.size(), level);
  if (ZSTD_isError(n)) return Status(ENOMEM, std::string("zstd: ") + ZSTD_getErrorName(n));
  out.resize(n);
  return out;
}

Result<std::string> decompressBody(std::string_view frame, int64_t expected_size) {
  unsigned long long declared = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (declared == ZSTD_CONTENTSIZE_ERROR || declared == ZSTD_CONTENTSIZE_UNKNOWN ||
      expected_size < 0 || declared != static_cast<unsigned long long>(expected_size)) {
    return Status(EILSEQ, "stored body: zstd frame header does not match the recorded size");
  }
  std::string out(static_cast<size_t>(expected_size), '\0');
  size_t n = ZSTD_decompress(out.data(), out.size(), frame.data(), frame.size());
  if (ZSTD_isError(n)) return Status(EILSEQ, std::string("stored body: ") + ZSTD_getErrorName(n));
  if (n != out.size()) return Status(EILSEQ, "stored body: short zstd frame");
  return out;
}

bool isValidUtf8(std::string_view bytes) {
  for (size_t i = 0; i < bytes.size();) {
    size_t len = utf8SequenceLength(bytes, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

std::string toValidUtf8(std::string_view bytes) {
  if (isValidUtf8(bytes)) return std::string(bytes);
  std::string out;
  out.reserve(bytes.size() + 16);
  for (size_t i = 0; i < bytes.size();) {
    size_t len = utf8SequenceLength(bytes, i);
    if (len == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD for each byte that starts no valid sequence
      ++i;
    } else {
      out.append(bytes.substr(i, len));
      i += len;
    }
  }
  return out;
}

std::string base64Encode(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = (uint32_t(p[i]) << 16) | (uint32_t(p[i + 1]) << 8) | p[i + 2];
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t v = uint32_t(p[i]) << 16;
    if (rest == 2) v |= uint32_t(p[i + 1]) << 8;
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

void SqlQuery::bindTo(SqlStmt& s) const {
  for (size_t i = 0; i < args.size(); ++i) {
    int index = static_cast<int>(i) + 1;
    if (const auto* v = std::get_if<int64_t>(&args[i])) {
      s.bind(index, *v);
    } else {
      s.bindText(index, std::get<std::string>(args[i]));
    }
  }
}

void appendPage(size_t limit, size_t offset, SqlQuery& q) {
  q.sql += " LIMIT ? OFFSET ?";
  q.args.emplace_back(static_cast<int64_t>(limit));
  q.args.emplace_back(static_cast<int64_t>(offset));
}

size_t clampLimit(size_t limit) { return std::clamp<size_t>(limit, 1, 1000); }

std::string makeCursor(int64_t time_ms, int64_t id) {
  return std::to_string(time_ms) + "." + std::to_string(id);
}

bool parseCursor(std::string_view cursor, int64_t* time_ms, int64_t* id) {
  size_t dot = cursor.find('.');
  if (dot == std::string_view::npos) return false;
  auto parse = [](std::string_view s, int64_t* out) {
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
    return ec == std::errc() && end == s.data() + s.size() && !s.empty();
  };
  return parse(cursor.substr(0, dot), time_ms) && parse(cursor.substr(dot + 1), id);
}

std::vector<std::string> stringsFromJson(const std::string& text) {
  std::vector<std::string> out;
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_array()) return out;
  for (const auto& v : j) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

}  // namespace gatehouse::proxy::logstore
