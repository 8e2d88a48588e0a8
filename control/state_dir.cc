#include "control/state_dir.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <nlohmann/json.hpp>

#include "wg/crypto/x25519.h"
#include "wg/uapi.h"

namespace gatehouse::control {
namespace {

Result<std::string> readFile(const std::string& path, bool secret) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::fromErrno(errno, "open " + path);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    ::close(fd);
    return Status::fromErrno(errno, "stat " + path);
  }
  if (secret && (st.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    return Status(
        EPERM, path + " is readable by others (mode " + mode + "); fix it with: chmod 600 " + path);
  }
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return Status::fromErrno(e, "read " + path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  sodium_memzero(buf, sizeof buf);
  ::close(fd);
  return out;
}

}  // namespace

Status StateDir::ensure() const {
  if (path_.empty()) return Status(EINVAL, "no state directory given (--state-dir)");
  if (mkdir(path_.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::fromErrno(errno, "create state directory " + path_);
  }
  struct stat st;
  if (stat(path_.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Status(ENOTDIR, "state directory " + path_ + " is not a directory");
  }
  return Status::ok();
}

Status StateDir::writeFile(const std::string& name, const std::string& bytes) const {
  std::string final_path = file(name);
  std::string tmp = final_path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::fromErrno(errno, "create " + tmp);
  fchmod(fd, 0600);  // in case it existed with other bits
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return Status::fromErrno(e, "write " + tmp);
    }
    off += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0 || ::close(fd) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return Status::fromErrno(e, "sync " + tmp);
  }
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return Status::fromErrno(e, "rename " + tmp);
  }
  return Status::ok();
}

Result<Key32> StateDir::loadOrCreateKey(const std::string& name) const {
  std::string path = file(name);
  if (access(path.c_str(), F_OK) != 0) {
    Key32 seed;
    randombytes_buf(seed.data(), seed.size());
    Key32 key = wg::crypto::privateKeyFromRandom(seed);
    sodium_memzero(seed.data(), seed.size());
    if (Status st = saveKey(name, key); !st) return st;
    return key;
  }
  auto text = readFile(path, true);
  if (!text) return text.status();
  std::string& t = text.value();
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
  auto key = wg::keyFromBase64(t);
  sodium_memzero(t.data(), t.size());
  if (!key) return Status(EINVAL, path + ": not a base64 private key (as `wg genkey` prints)");
  return *key;
}

Status StateDir::saveKey(const std::string& name, const Key32& key) const {
  std::string text = wg::keyToBase64(key) + "\n";
  Status st = writeFile(name, text);
  sodium_memzero(text.data(), text.size());
  return st;
}

PersistedControl StateDir::loadControl() const {
  PersistedControl c;
  auto text = readFile(file("control.json"), false);
  if (!text) return c;
  auto j = nlohmann::json::parse(text.value(), nullptr, false);
  if (!j.is_object()) return c;
  c.node_id = j.value("node_id", uint64_t{0});
  c.listen_port = j.value("listen_port", uint16_t{0});
  return c;
}

Status StateDir::saveControl(const PersistedControl& c) const {
  nlohmann::json j{{"node_id", c.node_id}, {"listen_port", c.listen_port}};
  return writeFile("control.json", j.dump() + "\n");
}

std::optional<NetworkMap> StateDir::loadMap() const {
  auto bytes = readFile(file("map.pb"), true);
  if (!bytes) return std::nullopt;
  v1::MapResponse m;
  if (!m.ParseFromString(bytes.value()) || !m.full() || !m.has_self()) return std::nullopt;
  return mapFromProto(m);
}

Status StateDir::saveMap(const NetworkMap& map) const {
  return writeFile("map.pb", mapToProto(map).SerializeAsString());
}

v1::MapResponse mapToProto(const NetworkMap& map) {
  v1::MapResponse m;
  m.set_seq(map.seq);
  m.set_full(true);
  *m.mutable_self() = map.self;
  for (const auto& [id, peer] : map.peers) *m.add_peers_changed() = peer;
  *m.mutable_filter() = map.filter;
  *m.mutable_caps() = map.caps;
  m.set_dns_suffix(map.dns_suffix);
  return m;
}

NetworkMap mapFromProto(const v1::MapResponse& full) {
  NetworkMap map;
  map.seq = full.seq();
  map.self = full.self();
  for (const v1::Node& p : full.peers_changed()) map.peers[p.id()] = p;
  map.filter = full.filter();
  map.caps = full.caps();
  map.dns_suffix = full.dns_suffix();
  return map;
}

}  // namespace gatehouse::control
