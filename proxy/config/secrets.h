// Provider keys: where they come from ("env:NAME" or "file:PATH" in the gateway config) and the
// type that holds them.
//
// A Secret owns one heap buffer of exactly its size, wipes it (sodium_memzero) when destroyed or
// overwritten, and has no way to print its value: operator<< and toString() give "[secret]", so a
// Secret that ends up in a log line, a gtest failure message or an error string leaks nothing.
// The value is read only through reveal(), which keeps every use greppable.
//
// resolveSecret does I/O (environment, one file read) and is meant for config load time, never
// the request path. Key files must not be readable by group or others (chmod 600), must be
// regular files, and hold the key on one line (surrounding whitespace trimmed).
//
// Thread safety: a Secret is a plain value; concurrent const use is safe.
#pragma once

#include <cstddef>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "wg/status.h"

namespace gatehouse::proxy {

class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string_view value);
  Secret(const Secret& other);
  Secret& operator=(const Secret& other);
  Secret(Secret&& other) noexcept;
  Secret& operator=(Secret&& other) noexcept;
  ~Secret();

  // The secret bytes. Copy them only into buffers that are wiped or sent straight to the wire.
  std::string_view reveal() const { return {data_.get(), size_}; }
  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  std::string toString() const { return "[secret]"; }
  // Constant-time comparison (the length is not secret).
  bool equals(std::string_view other) const;

 private:
  void wipe();
  std::unique_ptr<char[]> data_;
  size_t size_ = 0;
};

std::ostream& operator<<(std::ostream& os, const Secret& s);

// Environment lookup, injectable so tests and the fuzzer never touch the real environment.
// nullopt = not set.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvLookup processEnv();  // ::getenv

// Resolves "env:NAME" or "file:PATH". A relative PATH is taken relative to `base_dir` ("" =
// the working directory). Errors (EINVAL, ENOENT, EACCES, ...) name the reference and the fix and
// never contain the secret's bytes.
Result<Secret> resolveSecret(std::string_view ref, const EnvLookup& env,
                             const std::string& base_dir);

// Checks only the reference's syntax ("env:NAME", "file:PATH"); "" when fine, else why not.
std::string checkSecretRef(std::string_view ref);

// Whether `value` can be sent as an HTTP header value: no CR, LF or NUL (header injection) and no
// other control characters.
bool validHeaderValue(std::string_view value);

}  // namespace gatehouse::proxy
