// The usage tap's view of a JSON document: a skimming reader and the full SAX reader it must
// agree with. See usage_document.h.
#include "proxy/usage/usage_document.h"

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace gatehouse::proxy {
namespace {

using nlohmann::json;

constexpr size_t kNpos = std::string_view::npos;

// How much of a container to keep.
//   kTop       an object whose scalars are kept and whose members named below open their rules
//   kAll       everything
//   kScalars   its scalars; containers inside become null
//   kElements  an array whose object elements are kScalars; arrays inside become null
enum class Keep : uint8_t { kTop, kAll, kScalars, kElements };

// The rule for a container opening inside a `parent` container, as the member `key` when the
// parent is an object; nullopt: the container becomes null.
std::optional<Keep> keepFor(Keep parent, std::string_view key, bool object) {
  switch (parent) {
    case Keep::kAll:
      return Keep::kAll;
    case Keep::kScalars:
      return std::nullopt;
    case Keep::kElements:
      return object ? std::optional(Keep::kScalars) : std::nullopt;
    case Keep::kTop:
      break;
  }
  if (key == "usage" || key == "error" || key == "incomplete_details") return Keep::kAll;
  if (key == "message" || key == "response") {
    return object ? std::optional(Keep::kTop) : std::nullopt;
  }
  if (key == "delta") return object ? std::optional(Keep::kScalars) : std::nullopt;
  if (key == "choices" || key == "output") {
    return object ? std::nullopt : std::optional(Keep::kElements);
  }
  return std::nullopt;
}

// The rule for the document itself.
Keep rootKeep(bool object) { return object ? Keep::kTop : Keep::kScalars; }

// ---- The full reader: nlohmann::json's SAX parser, materializing only what is kept. ----

class UsageDom final : public nlohmann::json_sax<json> {
 public:
  explicit UsageDom(json& root) : root_(root) {}

  bool null() override { return value(nullptr); }
  bool boolean(bool v) override { return value(v); }
  bool number_integer(number_integer_t v) override { return value(v); }
  bool number_unsigned(number_unsigned_t v) override { return value(v); }
  bool number_float(number_float_t v, const string_t&) override { return value(v); }
  bool string(string_t& v) override { return value(std::move(v)); }
  bool binary(binary_t&) override { return value(nullptr); }  // not produced by text JSON
  bool key(string_t& k) override {
    if (skip_ == 0) key_ = std::move(k);
    return true;
  }
  bool start_object(std::size_t) override { return open(true); }
  bool start_array(std::size_t) override { return open(false); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;
  }

 private:
  struct Frame {
    json* at;
    Keep keep;
  };

  // Where the next value goes.
  json* slot() {
    if (stack_.empty()) return &root_;
    json& c = *stack_.back().at;
    if (c.is_object()) return &c[key_];
    c.push_back(nullptr);
    return &c.back();
  }
  bool value(json v) {
    if (skip_ == 0) *slot() = std::move(v);
    return true;
  }
  bool open(bool object) {
    if (skip_ > 0) {
      ++skip_;
      return true;
    }
    std::optional<Keep> keep =
        stack_.empty() ? rootKeep(object) : keepFor(stack_.back().keep, key_, object);
    json* s = slot();
    if (!keep) {
      *s = nullptr;
      skip_ = 1;
      return true;
    }
    *s = object ? json::object() : json::array();
    stack_.push_back({s, *keep});
    return true;
  }
  bool close() {
    if (skip_ > 0) {
      --skip_;
    } else if (!stack_.empty()) {
      stack_.pop_back();
    }
    return true;
  }

  json& root_;
  std::vector<Frame> stack_;
  std::string key_;
  size_t skip_ = 0;  // depth inside a container that is not kept
};

// ---- The skimming reader. ----

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

size_t skipSpace(std::string_view s, size_t i) {
  while (i < s.size() && isSpace(s[i])) ++i;
  return i;
}

// s[i] is '"': the index after the closing quote, or kNpos. A quote closes the string when an
// even number of backslashes precedes it.
size_t stringEnd(std::string_view s, size_t i) {
  const char* base = s.data();
  size_t from = i + 1;
  while (from < s.size()) {
    const void* q = std::memchr(base + from, '"', s.size() - from);
    if (q == nullptr) return kNpos;
    size_t at = static_cast<size_t>(static_cast<const char*>(q) - base);
    size_t run = at;
    while (run > i + 1 && base[run - 1] == '\\') --run;
    if ((at - run) % 2 == 0) return at + 1;
    from = at + 1;
  }
  return kNpos;
}

// A number or literal starting at s[i]: it runs to the next delimiter (or NUL, the end of input
// to nlohmann/json). Empty: nothing there.
size_t scalarEnd(std::string_view s, size_t i) {
  while (i < s.size()) {
    char c = s[i];
    if (isSpace(c) || c == ',' || c == '}' || c == ']' || c == ':' || c == '{' || c == '[' ||
        c == '"' || c == '\0') {
      break;
    }
    ++i;
  }
  return i;
}

// The end of the value at s[i] (no leading space), or kNpos when it is cut short or its brackets
// do not match.
size_t valueEnd(std::string_view s, size_t i) {
  char c = s[i];
  if (c == '"') return stringEnd(s, i);
  if (c != '{' && c != '[') {
    size_t end = scalarEnd(s, i);
    return end == i ? kNpos : end;
  }
  std::string closers;  // what each open container expects
  while (i < s.size()) {
    c = s[i];
    if (c == '"') {
      i = stringEnd(s, i);
      if (i == kNpos) return kNpos;
      continue;
    }
    if (c == '{') {
      closers.push_back('}');
    } else if (c == '[') {
      closers.push_back(']');
    } else if (c == '}' || c == ']') {
      if (closers.empty() || closers.back() != c) return kNpos;
      closers.pop_back();
      if (closers.empty()) return i + 1;
    }
    ++i;
  }
  return kNpos;
}

// Printable ASCII without escapes: the string's value is its bytes.
bool plainAscii(std::string_view raw) {
  for (char c : raw) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7F || c == '\\') return false;
  }
  return true;
}

// A non-negative integer of at most 18 digits without a leading zero, as nlohmann reads it
// (number_unsigned).
std::optional<uint64_t> smallUnsigned(std::string_view tok) {
  if (tok.empty() || tok.size() > 18 || (tok[0] == '0' && tok.size() > 1)) return std::nullopt;
  uint64_t n = 0;
  for (char c : tok) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  return n;
}

// Deeper than any provider's document; the skim then hands over to the full reader.
constexpr int kMaxSkimDepth = 64;

class Skim {
 public:
  explicit Skim(std::string_view s) : s_(s) {}

  // The container at s_[i] under `keep` into `out`; its end or kNpos.
  size_t container(size_t i, Keep keep, json& out, int depth) {
    if (depth > kMaxSkimDepth) {
      too_deep_ = true;
      return kNpos;
    }
    return s_[i] == '{' ? object(i, keep, out, depth) : array(i, keep, out, depth);
  }

  // The scalar at s_[i] into `out`; its end or kNpos.
  size_t scalar(size_t i, json& out) {
    size_t end;
    if (s_[i] == '"') {
      end = stringEnd(s_, i);
      if (end == kNpos) return kNpos;
      std::string_view raw = s_.substr(i + 1, end - i - 2);
      if (plainAscii(raw)) {
        out = std::string(raw);
        return end;
      }
    } else {
      end = scalarEnd(s_, i);
      if (end == i) return kNpos;
      std::string_view tok = s_.substr(i, end - i);
      if (tok == "null") {
        out = nullptr;
        return end;
      }
      if (tok == "true" || tok == "false") {
        out = tok == "true";
        return end;
      }
      if (auto n = smallUnsigned(tok)) {
        out = *n;
        return end;
      }
    }
    json v = json::parse(s_.begin() + i, s_.begin() + end, nullptr, /*allow_exceptions=*/false);
    if (v.is_discarded()) return kNpos;
    out = std::move(v);
    return end;
  }

  bool tooDeep() const { return too_deep_; }

 private:
  // A member or element at s_[i] of a container kept under `parent`.
  size_t member(size_t i, Keep parent, std::string_view key, json& out, int depth) {
    if (i >= s_.size()) return kNpos;
    char c = s_[i];
    if (c != '{' && c != '[') return scalar(i, out);
    std::optional<Keep> keep = keepFor(parent, key, c == '{');
    if (!keep) {
      out = nullptr;
      return valueEnd(s_, i);
    }
    return container(i, *keep, out, depth + 1);
  }

  size_t object(size_t i, Keep keep, json& out, int depth) {
    out = json::object();
    i = skipSpace(s_, i + 1);
    if (i < s_.size() && s_[i] == '}') return i + 1;
    std::string unescaped;
    for (;;) {
      if (i >= s_.size() || s_[i] != '"') return kNpos;
      size_t key_end = stringEnd(s_, i);
      if (key_end == kNpos) return kNpos;
      std::string_view key = s_.substr(i + 1, key_end - i - 2);
      if (key.find('\\') != std::string_view::npos) {
        json k;
        if (scalar(i, k) == kNpos) return kNpos;
        unescaped = k.get<std::string>();
        key = unescaped;
      }
      i = skipSpace(s_, key_end);
      if (i >= s_.size() || s_[i] != ':') return kNpos;
      i = member(skipSpace(s_, i + 1), keep, key, out[std::string(key)], depth);
      if (!next(i, '}')) return i;
    }
  }

  size_t array(size_t i, Keep keep, json& out, int depth) {
    out = json::array();
    i = skipSpace(s_, i + 1);
    if (i < s_.size() && s_[i] == ']') return i + 1;
    for (;;) {
      out.push_back(nullptr);
      i = member(i, keep, {}, out.back(), depth);
      if (!next(i, ']')) return i;
    }
  }

  // After a member or element ending at `i` (kNpos: it failed): true with `i` at the next one
  // after a comma; false with `i` past `closer`, or kNpos when something else is there.
  bool next(size_t& i, char closer) const {
    if (i == kNpos) return false;
    i = skipSpace(s_, i);
    if (i < s_.size() && s_[i] == ',') {
      i = skipSpace(s_, i + 1);
      return true;
    }
    i = i < s_.size() && s_[i] == closer ? i + 1 : kNpos;
    return false;
  }

  std::string_view s_;
  bool too_deep_ = false;
};

}  // namespace

bool readUsageDocumentFull(std::string_view text, json& out) {
  out = json();
  UsageDom dom(out);
  return json::sax_parse(text.begin(), text.end(), &dom);
}

bool readUsageDocument(std::string_view text, json& out) {
  out = json();
  size_t i = 0;
  if (text.substr(0, 3) == "\xEF\xBB\xBF") i = 3;  // nlohmann skips a UTF-8 byte order mark
  i = skipSpace(text, i);
  if (i >= text.size()) return false;
  Skim skim(text);
  char c = text[i];
  size_t end =
      c == '{' || c == '[' ? skim.container(i, rootKeep(c == '{'), out, 1) : skim.scalar(i, out);
  if (skim.tooDeep()) return readUsageDocumentFull(text, out);
  // nlohmann/json reads a NUL byte as the end of its input: what follows one is not looked at.
  if (end != kNpos) end = skipSpace(text, end);
  if (end == kNpos || (end != text.size() && text[end] != '\0')) {
    out = json();
    return false;
  }
  return true;
}

}  // namespace gatehouse::proxy
