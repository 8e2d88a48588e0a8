// Cryptokey routing table: longest-prefix match from IP address to peer, IPv4 and IPv6
// (reference D9-D11). A binary (path-compressed) trie per family, like wireguard-go's
// allowedips.go. A prefix belongs to at most one peer: inserting it for another peer moves it.
//
// Not thread-safe; owned by the device on its loop. `Value` is an opaque non-null pointer.
#pragma once

#include <memory>
#include <unordered_map>
#include <vector>

#include "wg/net/addr.h"

namespace gatehouse::wg {

class AllowedIps {
 public:
  using Value = const void*;

  AllowedIps();
  ~AllowedIps();
  AllowedIps(const AllowedIps&) = delete;
  AllowedIps& operator=(const AllowedIps&) = delete;

  // Prefix is normalized (host bits cleared) before insertion.
  void insert(const IpPrefix& prefix, Value value);
  // Removes the prefix only if it currently belongs to `value`. Returns whether it did.
  bool remove(const IpPrefix& prefix, Value value);
  void removeByValue(Value value);
  void clear();
  // Longest-prefix match; nullptr when nothing matches.
  Value lookup(const IpAddr& addr) const;
  // The prefixes that belong to `value`, oldest assignment first (like wireguard-go and the
  // kernel, which keep a per-peer list). O(prefixes of value).
  std::vector<IpPrefix> entriesFor(Value value) const;
  size_t size() const;

 private:
  struct Node;
  struct List {  // intrusive list of a value's nodes, so removeByValue/entriesFor skip the trie
                 // walk
    Node* head = nullptr;
    Node* tail = nullptr;
  };
  std::unique_ptr<Node>& slotOf(Node* node);
  void link(Node* node, Value value);
  void unlink(Node* node);
  void removeNode(Node* node);
  std::unique_ptr<Node> root4_, root6_;
  std::unordered_map<Value, List> by_value_;
  size_t size_ = 0;
};

}  // namespace gatehouse::wg
