// Status and Result<T>: errors as values at API boundaries (STYLE habit 6).
//
// A Status is an errno-style code (0 = ok, otherwise a positive errno such as EADDRINUSE,
// ETIMEDOUT, ECONNRESET, EINVAL, EBADF) plus a human message that names what failed and, for
// user input, how to fix it. Codes are errno values so the fd API and the future C ABI can hand
// them through unchanged.
//
// Thread safety: plain values.
#pragma once

#include <cstring>
#include <optional>
#include <string>
#include <utility>

namespace gatehouse {

class Status {
 public:
  Status() = default;
  Status(int code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok() { return {}; }
  // "what: strerror(code)".
  static Status fromErrno(int code, const std::string& what) {
    return {code, what + ": " + std::strerror(code)};
  }

  bool isOk() const { return code_ == 0; }
  explicit operator bool() const { return isOk(); }
  int code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string toString() const { return isOk() ? "ok" : message_; }

 private:
  int code_ = 0;
  std::string message_;
};

// A value or a non-ok Status.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}          // NOLINT: implicit on purpose
  Result(Status status) : status_(std::move(status)) {}  // NOLINT
  bool isOk() const { return value_.has_value(); }
  explicit operator bool() const { return isOk(); }
  const Status& status() const { return status_; }
  T& value() { return *value_; }
  const T& value() const { return *value_; }
  T& operator*() { return *value_; }
  T* operator->() { return &*value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace gatehouse
