// Secret storage and env:/file: resolution. See secrets.h.
#include "proxy/config/secrets.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ostream>

namespace gatehouse::proxy {
namespace {

// A key is a line of text; anything larger is the wrong file (a CA bundle, a log).
constexpr size_t kMaxKeyFileBytes = 64 * 1024;

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && isSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && isSpace(s.back())) s.remove_suffix(1);
  return s;
}

bool validEnvName(std::string_view name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

std::string octalMode(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

// Reads the whole key file through one descriptor, so the checks (regular file, mode) and the
// read see the same file.
Result<Secret> readKeyFile(const std::string& ref, const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    int err = errno;
    return Status(err, "key " + ref + ": cannot open " + path + ": " + std::strerror(err) +
                           (err == ENOENT ? "; create it with the key on one line, mode 0600"
                                          : "; make it readable by the gateway's user"));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status(EINVAL, "key " + ref + ": " + path + " is not a regular file");
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    return Status(EACCES, "key " + ref + ": " + path + " has mode " + octalMode(st.st_mode) +
                              " and is readable by group or others: run chmod 600 " + path);
  }
  if (static_cast<size_t>(st.st_size) > kMaxKeyFileBytes) {
    ::close(fd);
    return Status(EINVAL, "key " + ref + ": " + path + " is " + std::to_string(st.st_size) +
                              " bytes; a key file holds one key on one line");
  }
  std::string buf(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < buf.size()) {
    ssize_t n = ::read(fd, buf.data() + got, buf.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  Secret secret(trim(std::string_view(buf).substr(0, got)));
  sodium_memzero(buf.data(), buf.size());
  if (secret.empty()) {
    return Status(EINVAL, "key " + ref + ": " + path + " is empty: put the key in it");
  }
  return secret;
}

}  // namespace

Secret::Secret(std::string_view value) : size_(value.size()) {
  if (size_ == 0) return;
  data_ = std::make_unique<char[]>(size_);
  std::memcpy(data_.get(), value.data(), size_);
}

Secret::Secret(const Secret& other) : Secret(other.reveal()) {}

Secret& Secret::operator=(const Secret& other) {
  if (this != &other) {
    Secret copy(other);
    *this = std::move(copy);
  }
  return *this;
}

Secret::Secret(Secret&& other) noexcept : data_(std::move(other.data_)), size_(other.size_) {
  other.size_ = 0;
}

Secret& Secret::operator=(Secret&& other) noexcept {
  if (this != &other) {
    wipe();
    data_ = std::move(other.data_);
    size_ = other.size_;
    other.size_ = 0;
  }
  return *this;
}

Secret::~Secret() { wipe(); }

void Secret::wipe() {
  if (data_) sodium_memzero(data_.get(), size_);
  data_.reset();
  size_ = 0;
}

bool Secret::equals(std::string_view other) const {
  if (other.size() != size_) return false;
  if (size_ == 0) return true;
  return sodium_memcmp(data_.get(), other.data(), size_) == 0;
}

std::ostream& operator<<(std::ostream& os, const Secret& s) { return os << s.toString(); }

EnvLookup processEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  };
}

std::string checkSecretRef(std::string_view ref) {
  if (ref.rfind("env:", 0) == 0) {
    if (!validEnvName(ref.substr(4))) {
      return "\"" + std::string(ref) +
             "\" is not a valid environment variable name: use letters, digits and _, e.g. "
             "\"env:ANTHROPIC_API_KEY\"";
    }
    return "";
  }
  if (ref.rfind("file:", 0) == 0) {
    if (ref.size() == 5) return "\"file:\" needs a path, e.g. \"file:/etc/gatehouse/openai.key\"";
    return "";
  }
  // Never echo the value: someone may have pasted the key itself here.
  return "must be \"env:NAME\" or \"file:PATH\" (the key itself never goes in the config), e.g. "
         "\"env:ANTHROPIC_API_KEY\"";
}

Result<Secret> resolveSecret(std::string_view ref, const EnvLookup& env,
                             const std::string& base_dir) {
  std::string why = checkSecretRef(ref);
  if (!why.empty()) return Status(EINVAL, "key " + why);
  std::string r(ref);
  if (r.rfind("env:", 0) == 0) {
    std::string name = r.substr(4);
    std::optional<std::string> value = env ? env(name) : processEnv()(name);
    if (!value) {
      return Status(ENOENT, "key " + r + ": environment variable " + name +
                                " is not set: export it before starting the gateway, or use "
                                "\"file:PATH\"");
    }
    Secret secret(trim(*value));
    sodium_memzero(value->data(), value->size());
    if (secret.empty()) {
      return Status(EINVAL, "key " + r + ": environment variable " + name + " is empty");
    }
    if (!validHeaderValue(secret.reveal())) {
      return Status(EINVAL, "key " + r + ": the value holds control characters (a newline?)");
    }
    return secret;
  }
  std::string path = r.substr(5);
  if (path[0] != '/' && !base_dir.empty()) path = base_dir + "/" + path;
  Result<Secret> secret = readKeyFile(r, path);
  if (secret && !validHeaderValue(secret->reveal())) {
    return Status(EINVAL, "key " + r + ": the key holds control characters: keep it on one line");
  }
  return secret;
}

bool validHeaderValue(std::string_view value) {
  for (char c : value) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) return false;
  }
  return true;
}

}  // namespace gatehouse::proxy
