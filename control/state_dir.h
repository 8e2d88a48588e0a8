// A node's state directory: what `gatehouse up` (and every embedded node that joins through the
// control plane) keeps across restarts so that it comes back as the same node, on the same
// addresses, with its data plane working before the control server answers.
//
//   machine.key   the machine key (Noise static key of the control channel), base64
//   node.key      the WireGuard node key, base64 (rotated when the server expires it)
//   control.json  {"node_id": N, "listen_port": P}
//   map.pb        the last complete network map (a full gatehouse.control.v1.MapResponse)
//
// Every file is written atomically (temporary file, fsync, rename) with mode 0600 in a directory
// created 0700; a key file that group or other may read is refused with the chmod that fixes it.
// Not thread-safe: one owner (the node's loop).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "control/client_core.h"
#include "wg/status.h"

namespace gatehouse::control {

struct PersistedControl {
  uint64_t node_id = 0;
  uint16_t listen_port = 0;
};

class StateDir {
 public:
  explicit StateDir(std::string path) : path_(std::move(path)) {}
  const std::string& path() const { return path_; }

  // Creates the directory (0700) if missing.
  Status ensure() const;
  // Reads `name` (a base64 key); creates it with a fresh private key when missing.
  Result<Key32> loadOrCreateKey(const std::string& name) const;
  Status saveKey(const std::string& name, const Key32& key) const;

  PersistedControl loadControl() const;  // zeros when missing or unreadable
  Status saveControl(const PersistedControl& c) const;

  // The last map, or nullopt when missing or corrupt (a corrupt file is ignored, not fatal: the
  // server sends a full map on connect).
  std::optional<NetworkMap> loadMap() const;
  Status saveMap(const NetworkMap& map) const;

  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  Status writeFile(const std::string& name, const std::string& bytes) const;
  std::string path_;
};

// NetworkMap ↔ a full MapResponse (the on-disk form of map.pb).
v1::MapResponse mapToProto(const NetworkMap& map);
NetworkMap mapFromProto(const v1::MapResponse& full);

}  // namespace gatehouse::control
