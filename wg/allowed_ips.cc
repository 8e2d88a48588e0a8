// Path-compressed binary trie, the shape of the kernel's allowedips.c and wireguard-go's
// allowedips.go. Every node holds a prefix (key + cidr); a child's prefix extends its parent's, and
// the bit right after the parent's prefix picks the child. Nodes without a value are branch points
// created when two prefixes diverge; they always have two children and are spliced out as soon as
// they would not. Depth is bounded by the address length, so lookup is at most 33 / 129 steps.
//
// Addresses become two host-order 64-bit words (IPv4 in the top 32 bits of `hi`) so matching is two
// masked XORs instead of a byte loop.
#include "wg/allowed_ips.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace gatehouse::wg {
namespace {

struct Key {
  uint64_t hi = 0, lo = 0;
};

uint64_t loadBe64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return std::endian::native == std::endian::little ? __builtin_bswap64(v) : v;
}

void storeBe64(uint8_t* p, uint64_t v) {
  if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap64(v);
  std::memcpy(p, &v, 8);
}

Key keyOf(const IpAddr& a) {
  if (a.isV6()) return Key{loadBe64(a.bytes.data()), loadBe64(a.bytes.data() + 8)};
  return Key{loadBe64(a.bytes.data()) & 0xffffffff00000000ULL, 0};
}

Key maskOf(unsigned cidr) {
  Key m;
  if (cidr > 0) m.hi = cidr >= 64 ? ~uint64_t{0} : ~uint64_t{0} << (64 - cidr);
  if (cidr > 64) m.lo = ~uint64_t{0} << (128 - cidr);
  return m;
}

// Bit `i` (0 = most significant) of the 128-bit key.
unsigned bitAt(const Key& k, unsigned i) {
  if (i < 64) return (k.hi >> (63 - i)) & 1;
  if (i < 128) return (k.lo >> (127 - i)) & 1;
  return 0;
}

unsigned commonBits(const Key& a, const Key& b) {
  if (uint64_t x = a.hi ^ b.hi) return std::countl_zero(x);
  if (uint64_t x = a.lo ^ b.lo) return 64 + std::countl_zero(x);
  return 128;
}

}  // namespace

struct AllowedIps::Node {
  Node(const Key& k, unsigned c, bool six)
      : mask(maskOf(c)), cidr(static_cast<uint8_t>(c)), v6(six) {
    key.hi = k.hi & mask.hi;
    key.lo = k.lo & mask.lo;
  }
  bool matches(const Key& k) const {
    return (((k.hi ^ key.hi) & mask.hi) | ((k.lo ^ key.lo) & mask.lo)) == 0;
  }

  Key key;
  Key mask;
  uint8_t cidr;
  bool v6;
  Value value = nullptr;
  Node* parent = nullptr;
  std::unique_ptr<Node> child[2];
  Node* prev = nullptr;  // neighbours in the value's list
  Node* next = nullptr;
};

AllowedIps::AllowedIps() = default;
AllowedIps::~AllowedIps() = default;

std::unique_ptr<AllowedIps::Node>& AllowedIps::slotOf(Node* node) {
  if (Node* p = node->parent) return p->child[p->child[0].get() == node ? 0 : 1];
  return node->v6 ? root6_ : root4_;
}

void AllowedIps::link(Node* node, Value value) {
  node->value = value;
  List& list = by_value_[value];
  node->prev = list.tail;
  node->next = nullptr;
  (list.tail ? list.tail->next : list.head) = node;
  list.tail = node;
}

void AllowedIps::unlink(Node* node) {
  auto it = by_value_.find(node->value);
  List& list = it->second;
  (node->prev ? node->prev->next : list.head) = node->next;
  (node->next ? node->next->prev : list.tail) = node->prev;
  node->prev = node->next = nullptr;
  node->value = nullptr;
  if (!list.head) by_value_.erase(it);
}

// `node` has just lost its value. Keep it only while it still separates two subtrees.
void AllowedIps::removeNode(Node* node) {
  if (node->child[0] && node->child[1]) return;
  Node* parent = node->parent;
  std::unique_ptr<Node>& slot = slotOf(node);
  std::unique_ptr<Node> dead = std::move(slot);
  slot = std::move(dead->child[dead->child[0] ? 0 : 1]);
  if (slot) slot->parent = parent;
  dead.reset();
  // The parent may be a branch point that now has one child: splice it out as well.
  if (parent && !parent->value) removeNode(parent);
}

void AllowedIps::insert(const IpPrefix& prefix, Value value) {
  if (!value || prefix.addr.family == IpAddr::Family::kNone) return;
  const bool v6 = prefix.addr.isV6();
  const unsigned cidr = std::min<unsigned>(prefix.bits, prefix.addr.maxBits());
  const Key k = keyOf(prefix.addr);
  std::unique_ptr<Node>& root = v6 ? root6_ : root4_;

  Node* parent = nullptr;
  for (Node* n = root.get(); n && n->cidr <= cidr && n->matches(k);
       n = n->child[bitAt(k, n->cidr)].get()) {
    if (n->cidr == cidr) {
      if (n->value == value) return;
      if (n->value) {
        unlink(n);  // D11: the prefix moves to the new value
      } else {
        ++size_;
      }
      link(n, value);
      return;
    }
    parent = n;
  }

  auto fresh = std::make_unique<Node>(k, cidr, v6);
  Node* added = fresh.get();
  std::unique_ptr<Node>& slot = parent ? parent->child[bitAt(k, parent->cidr)] : root;
  if (!slot) {
    fresh->parent = parent;
    slot = std::move(fresh);
  } else {
    Node* down = slot.get();
    unsigned common = std::min(cidr, commonBits(down->key, k));
    if (common == cidr) {
      // The new prefix covers `down`: it slots in between.
      down->parent = added;
      fresh->child[bitAt(down->key, cidr)] = std::move(slot);
      fresh->parent = parent;
      slot = std::move(fresh);
    } else {
      // They diverge at bit `common`: a branch point takes both.
      auto branch = std::make_unique<Node>(k, common, v6);
      branch->parent = parent;
      down->parent = branch.get();
      added->parent = branch.get();
      unsigned b = bitAt(down->key, common);
      branch->child[b] = std::move(slot);
      branch->child[b ^ 1] = std::move(fresh);
      slot = std::move(branch);
    }
  }
  link(added, value);
  ++size_;
}

bool AllowedIps::remove(const IpPrefix& prefix, Value value) {
  if (!value || prefix.addr.family == IpAddr::Family::kNone) return false;
  const unsigned cidr = std::min<unsigned>(prefix.bits, prefix.addr.maxBits());
  const Key k = keyOf(prefix.normalized().addr);
  Node* n = (prefix.addr.isV6() ? root6_ : root4_).get();
  while (n && n->cidr < cidr && n->matches(k)) n = n->child[bitAt(k, n->cidr)].get();
  if (!n || n->cidr != cidr || !n->matches(k) || n->value != value) return false;
  unlink(n);
  --size_;
  removeNode(n);
  return true;
}

void AllowedIps::removeByValue(Value value) {
  auto it = by_value_.find(value);
  if (it == by_value_.end()) return;
  Node* n = it->second.head;
  by_value_.erase(it);
  // removeNode frees `n` and maybe valueless branch points, never another valued node, so `next`
  // stays valid.
  while (n) {
    Node* next = n->next;
    n->value = nullptr;
    n->prev = n->next = nullptr;
    --size_;
    removeNode(n);
    n = next;
  }
}

void AllowedIps::clear() {
  root4_.reset();
  root6_.reset();
  by_value_.clear();
  size_ = 0;
}

AllowedIps::Value AllowedIps::lookup(const IpAddr& addr) const {
  const Node* n;
  if (addr.isV4()) {
    n = root4_.get();
  } else if (addr.isV6()) {
    n = root6_.get();
  } else {
    return nullptr;
  }
  const Key k = keyOf(addr);
  const unsigned max_bits = addr.maxBits();
  Value found = nullptr;
  while (n && n->matches(k)) {
    if (n->value) found = n->value;
    if (n->cidr >= max_bits) break;
    n = n->child[bitAt(k, n->cidr)].get();
  }
  return found;
}

std::vector<IpPrefix> AllowedIps::entriesFor(Value value) const {
  std::vector<IpPrefix> out;
  auto it = by_value_.find(value);
  if (it == by_value_.end()) return out;
  for (const Node* n = it->second.head; n; n = n->next) {
    IpPrefix p;
    p.addr.family = n->v6 ? IpAddr::Family::kV6 : IpAddr::Family::kV4;
    storeBe64(p.addr.bytes.data(), n->key.hi);
    if (n->v6) storeBe64(p.addr.bytes.data() + 8, n->key.lo);
    p.bits = n->cidr;
    out.push_back(p);
  }
  return out;
}

size_t AllowedIps::size() const { return size_; }

}  // namespace gatehouse::wg
