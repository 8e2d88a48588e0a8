// Diagnostic and Result<T>: errors as values for user input (STYLE habit 6).
//
// A Diagnostic is one problem in a user's file: a 1-based line and column (bytes, tabs count as
// one) and a message that says what is wrong and how to fix it. A Result<T> holds either a value
// or one or more diagnostics, so a validator can report every problem in a file at once.
//
// Thread safety: plain values.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gatehouse::control {

struct Diagnostic {
  int line = 0;    // 1-based; 0 when the problem has no position (e.g. an empty file)
  int column = 0;  // 1-based byte column
  std::string message;

  // "FILE:LINE:COL: message" (or "FILE: message" without a position).
  std::string format(std::string_view file) const {
    std::string out(file);
    if (line > 0) out += ":" + std::to_string(line) + ":" + std::to_string(column);
    out += ": " + message;
    return out;
  }
  bool operator==(const Diagnostic&) const = default;
};

// A value, or the diagnostics that prevented it.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Diagnostic d) { errors_.push_back(std::move(d)); }
  Result(std::vector<Diagnostic> errors) : errors_(std::move(errors)) {}

  bool ok() const { return value_.has_value(); }
  explicit operator bool() const { return ok(); }
  T& value() { return *value_; }
  const T& value() const { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  const std::vector<Diagnostic>& errors() const { return errors_; }

 private:
  std::optional<T> value_;
  std::vector<Diagnostic> errors_;
};

}  // namespace gatehouse::control
