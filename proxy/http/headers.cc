#include "proxy/http/headers.h"

#include <algorithm>
#include <array>

namespace gatehouse::proxy::http {

namespace {

// ASCII lower case as a table: header names are compared for every lookup of every request.
constexpr std::array<unsigned char, 256> kLower = [] {
  std::array<unsigned char, 256> t{};
  for (int c = 0; c < 256; ++c)
    t[c] = static_cast<unsigned char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  return t;
}();

// RFC 9110 §5.6.2 tchar: DIGIT / ALPHA / "!#$%&'*+-.^_`|~" (a table: every header name byte is
// tested).
constexpr std::array<bool, 256> kTokenChars = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = t[c - 'a' + 'A'] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

bool isTokenChar(unsigned char c) { return kTokenChars[c]; }

constexpr std::array<std::string_view, 9> kHopByHop = {
    "Connection", "Keep-Alive",         "Proxy-Connection",    "TE", "Trailer", "Transfer-Encoding",
    "Upgrade",    "Proxy-Authenticate", "Proxy-Authorization",
};

}  // namespace

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    auto x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (x != y && kLower[x] != kLower[y]) return false;
  }
  return true;
}

bool isHopByHop(std::string_view name) {
  return std::any_of(kHopByHop.begin(), kHopByHop.end(),
                     [&](std::string_view h) { return equalsIgnoreCase(h, name); });
}

bool isValidHeaderName(std::string_view name) {
  if (name.empty()) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return isTokenChar(static_cast<unsigned char>(c)); });
}

bool isValidHeaderValue(std::string_view value) {
  for (char c : value) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  if (!value.empty()) {
    char first = value.front(), last = value.back();
    if (first == ' ' || first == '\t' || last == ' ' || last == '\t') return false;
  }
  return true;
}

void HeaderList::add(std::string name, std::string value) {
  if (headers_.capacity() == 0) headers_.reserve(16);  // a typical request or response head
  headers_.push_back(Header{std::move(name), std::move(value)});
}

void HeaderList::set(std::string_view name, std::string value) {
  auto first = std::find_if(headers_.begin(), headers_.end(),
                            [&](const Header& h) { return equalsIgnoreCase(h.name, name); });
  if (first == headers_.end()) {
    headers_.push_back(Header{std::string(name), std::move(value)});
    return;
  }
  first->value = std::move(value);
  auto rest = std::remove_if(first + 1, headers_.end(),
                             [&](const Header& h) { return equalsIgnoreCase(h.name, name); });
  headers_.erase(rest, headers_.end());
}

size_t HeaderList::remove(std::string_view name) {
  auto rest = std::remove_if(headers_.begin(), headers_.end(),
                             [&](const Header& h) { return equalsIgnoreCase(h.name, name); });
  size_t removed = static_cast<size_t>(headers_.end() - rest);
  headers_.erase(rest, headers_.end());
  return removed;
}

std::optional<std::string_view> HeaderList::get(std::string_view name) const {
  for (const Header& h : headers_) {
    if (equalsIgnoreCase(h.name, name)) return std::string_view(h.value);
  }
  return std::nullopt;
}

std::vector<std::string_view> HeaderList::getAll(std::string_view name) const {
  std::vector<std::string_view> values;
  for (const Header& h : headers_) {
    if (equalsIgnoreCase(h.name, name)) values.emplace_back(h.value);
  }
  return values;
}

std::string HeaderList::getJoined(std::string_view name) const {
  std::string joined;
  for (const Header& h : headers_) {
    if (!equalsIgnoreCase(h.name, name)) continue;
    if (!joined.empty()) joined += ", ";
    joined += h.value;
  }
  return joined;
}

bool HeaderList::hasToken(std::string_view name, std::string_view token) const {
  bool found = false;
  for (const Header& h : headers_) {
    if (!equalsIgnoreCase(h.name, name)) continue;
    forEachToken(h.value, [&](std::string_view t) { found = found || equalsIgnoreCase(t, token); });
    if (found) return true;
  }
  return false;
}

bool HeaderList::isHopByHop(std::string_view name) const {
  return http::isHopByHop(name) || hasToken("Connection", name);
}

size_t HeaderList::removeHopByHop() {
  // Collect the Connection-listed names first: removing Connection itself loses them.
  std::vector<std::string> listed;
  for (const Header& h : headers_) {
    if (!equalsIgnoreCase(h.name, "Connection")) continue;
    forEachToken(h.value, [&](std::string_view t) { listed.emplace_back(t); });
  }
  auto hop = [&](const Header& h) {
    if (http::isHopByHop(h.name)) return true;
    return std::any_of(listed.begin(), listed.end(),
                       [&](const std::string& l) { return equalsIgnoreCase(l, h.name); });
  };
  auto rest = std::remove_if(headers_.begin(), headers_.end(), hop);
  size_t removed = static_cast<size_t>(headers_.end() - rest);
  headers_.erase(rest, headers_.end());
  return removed;
}

}  // namespace gatehouse::proxy::http
