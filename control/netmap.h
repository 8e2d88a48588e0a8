// Server-side network maps on the wire: a snapshot of every node's compiled map in protobuf form,
// and the diff that turns "what this client last received" into MapResponse frames.
//
// Sans-I/O and pure. buildSnapshot() runs compilePolicy over all nodes once and serializes each
// node's peer entry once (shared by every map it appears in); filters and capability grants are
// interned by content, so a 1,000-node all-to-all tailnet holds one copy of each distinct filter.
// mapFrames() compares hashes only: a client's SentState is a few words per peer.
//
// Frames are serialized ServerMessage{map} bytes built by concatenating pre-serialized fields
// (protobuf allows fields in any order and repeated fields split across the message).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "control/compile.h"
#include "control/policy.h"
#include "control/store.h"

namespace gatehouse::control {

// One node as the server knows it, for map building.
struct MapNodeInput {
  NodeRecord record;
  std::string display_name;            // the owner's
  std::vector<std::string> endpoints;  // reported by the node
};

struct Blob {
  std::shared_ptr<const std::string> bytes;
  uint64_t hash = 0;
};

struct CompiledNode {
  Blob self;                                         // Node with machine_key
  std::vector<std::pair<uint64_t, uint64_t>> peers;  // (peer id, peer hash), ascending id
  Blob filter;                                       // PacketFilter
  Blob caps;                                         // CapabilityGrants
};

struct MapSnapshot {
  std::unordered_map<uint64_t, Blob> peers;  // node id → Node as peers see it
  std::unordered_map<uint64_t, CompiledNode> nodes;
  std::string dns_suffix;
};

MapSnapshot buildSnapshot(const Policy& policy, std::span<const MapNodeInput> nodes,
                          const std::string& dns_suffix);

// What one stream has received so far.
struct SentState {
  bool sent_full = false;
  uint64_t seq = 0;
  uint64_t self_hash = 0;
  uint64_t filter_hash = 0;
  uint64_t caps_hash = 0;
  std::vector<std::pair<uint64_t, uint64_t>> peers;
};

// Frames (serialized ServerMessage) bringing a client from `sent` to `node`; updates `sent`.
// Empty when nothing changed. The first frames of a stream carry full = true. Updates larger
// than `max_frame` are split; every frame but the last has partial = true.
std::vector<std::string> mapFrames(const MapSnapshot& snap, const CompiledNode& node,
                                   SentState& sent, size_t max_frame);

// Protobuf wire helpers (for frames built from pre-serialized parts).
void putVarint(std::string& out, uint64_t v);
void putLenField(std::string& out, uint32_t field, std::string_view bytes);

}  // namespace gatehouse::control
