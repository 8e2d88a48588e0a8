// HTTP header list: the fields of one message in wire order, with the names spelled as they
// arrived. A proxy must forward headers it does not understand untouched, so nothing here
// normalizes case, merges duplicates or reorders; lookups compare names case-insensitively
// (RFC 9110 §5.1).
//
// Also here: the hop-by-hop rules a proxy applies before forwarding (RFC 9110 §7.6.1), the
// token-list helpers they need (`Connection: keep-alive, Upgrade`), and the field syntax checks
// the serializers use to refuse header injection.
//
// Thread safety: plain values. Views returned by lookups point into the list and stay valid until
// the list is modified or destroyed.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gatehouse::proxy::http {

struct Header {
  std::string name;
  std::string value;
  bool operator==(const Header&) const = default;
};

// ASCII case-insensitive equality (header names and tokens are ASCII).
bool equalsIgnoreCase(std::string_view a, std::string_view b);

// True for the fixed hop-by-hop names: Connection, Keep-Alive, Proxy-Connection, TE, Trailer,
// Transfer-Encoding, Upgrade, Proxy-Authenticate, Proxy-Authorization. Names a message lists in
// its Connection header are hop-by-hop too: use HeaderList::isHopByHop for those.
bool isHopByHop(std::string_view name);

// RFC 9110 §5.1 field-name: a non-empty token.
bool isValidHeaderName(std::string_view name);
// RFC 9110 §5.5 field-value: no CR, LF or NUL (obs-text is allowed), no leading/trailing space.
bool isValidHeaderValue(std::string_view value);
// Calls `fn(token)` for each non-empty element of a comma-separated list, OWS trimmed.
template <typename Fn>
void forEachToken(std::string_view list, Fn&& fn);

class HeaderList {
 public:
  using const_iterator = std::vector<Header>::const_iterator;

  HeaderList() = default;
  HeaderList(std::initializer_list<Header> headers) : headers_(headers) {}

  // Appends a field; duplicates are kept (Set-Cookie, repeated Via, ...).
  void add(std::string name, std::string value);
  // Replaces every field named `name` by one field with `value`, at the first one's position
  // (appended when absent).
  void set(std::string_view name, std::string value);
  // Removes every field named `name`; returns how many went.
  size_t remove(std::string_view name);
  void clear() { headers_.clear(); }

  // First value of `name`, if present.
  std::optional<std::string_view> get(std::string_view name) const;
  // Every value of `name`, in order.
  std::vector<std::string_view> getAll(std::string_view name) const;
  // Every value of `name` joined with ", " (RFC 9110 §5.3 list combination); empty if absent.
  std::string getJoined(std::string_view name) const;
  bool contains(std::string_view name) const { return get(name).has_value(); }
  // True if any `name` field's comma-separated list holds `token` (case-insensitive).
  bool hasToken(std::string_view name, std::string_view token) const;

  // Hop-by-hop for this message: the fixed names plus every name listed in Connection.
  bool isHopByHop(std::string_view name) const;
  // Removes every hop-by-hop field (both kinds); returns how many went.
  size_t removeHopByHop();

  size_t size() const { return headers_.size(); }
  bool empty() const { return headers_.empty(); }
  const Header& operator[](size_t i) const { return headers_[i]; }
  const_iterator begin() const { return headers_.begin(); }
  const_iterator end() const { return headers_.end(); }
  const std::vector<Header>& entries() const { return headers_; }
  // Moves the fields out, leaving the list empty.
  std::vector<Header> release() { return std::exchange(headers_, {}); }
  bool operator==(const HeaderList&) const = default;

 private:
  std::vector<Header> headers_;
};

// --- template implementation ---

template <typename Fn>
void forEachToken(std::string_view list, Fn&& fn) {
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    if (comma == std::string_view::npos) comma = list.size();
    std::string_view token = list.substr(start, comma - start);
    while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) {
      token.remove_prefix(1);
    }
    while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
    if (!token.empty()) fn(token);
    start = comma + 1;
  }
}

}  // namespace gatehouse::proxy::http
