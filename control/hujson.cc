// HuJSON → standard JSON with positions. See hujson.h for the pipeline.
#include "control/hujson.h"

#include <algorithm>
#include <unordered_set>

namespace gatehouse::control {
namespace {

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Index just past the string literal starting at text[i] == '"' (text.size() if unterminated).
size_t skipString(std::string_view text, size_t i) {
  for (++i; i < text.size(); ++i) {
    if (text[i] == '\\') {
      ++i;
    } else if (text[i] == '"') {
      return i + 1;
    }
  }
  return text.size();
}

std::vector<uint32_t> lineStarts(std::string_view text) {
  std::vector<uint32_t> starts{0};
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n') starts.push_back(static_cast<uint32_t>(i + 1));
  }
  return starts;
}

SourcePos posIn(const std::vector<uint32_t>& starts, uint32_t offset) {
  auto it = std::upper_bound(starts.begin(), starts.end(), offset);
  size_t line = static_cast<size_t>(it - starts.begin());  // ≥ 1: starts[0] == 0
  return {static_cast<int>(line), static_cast<int>(offset - starts[line - 1] + 1)};
}

Diagnostic diagAt(const std::vector<uint32_t>& starts, size_t offset, std::string message) {
  SourcePos p = posIn(starts, static_cast<uint32_t>(offset));
  return {p.line, p.column, std::move(message)};
}

// Decoded key text of the string literal `token` (quotes included).
std::string decodeKey(std::string_view token) {
  std::string_view inner = token.substr(1, token.size() >= 2 ? token.size() - 2 : 0);
  if (inner.find('\\') == std::string_view::npos) return std::string(inner);
  try {
    return nlohmann::json::parse(token).get<std::string>();
  } catch (const nlohmann::json::exception&) {
    return std::string(inner);
  }
}

// "[json.exception.parse_error.101] parse error at line 1, column 5: syntax error ..." → the part
// after the position, which we replace with our own (identical) line:column.
std::string nlohmannReason(const std::string& what) {
  size_t col = what.find("column ");
  size_t colon = col == std::string::npos ? std::string::npos : what.find(": ", col);
  std::string reason = what;
  if (colon != std::string::npos) {
    reason = what.substr(colon + 2);
  } else if (size_t bracket = what.find("] "); bracket != std::string::npos) {
    reason = what.substr(bracket + 2);
  }
  // "; last read: '...'" echoes raw bytes (newlines included); the position says it better.
  if (size_t last = reason.find("; last read:"); last != std::string::npos) reason.resize(last);
  return reason;
}

bool tokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '+' || c == '-';
}

struct Frame {
  bool object = false;
  std::string pointer;
  std::string key;
  size_t index = 0;
  bool expect_key = false;
  std::unordered_set<std::string> seen;
};

}  // namespace

SourcePos JsonDoc::posOf(uint32_t offset) const { return posIn(line_starts_, offset); }

SourcePos JsonDoc::valuePos(const std::string& pointer) const {
  auto it = values_.find(pointer);
  return it == values_.end() ? SourcePos{} : posOf(it->second);
}

SourcePos JsonDoc::keyPos(const std::string& pointer) const {
  auto it = keys_.find(pointer);
  return it == keys_.end() ? valuePos(pointer) : posOf(it->second);
}

Diagnostic JsonDoc::at(const std::string& pointer, std::string message) const {
  SourcePos p = valuePos(pointer);
  return {p.line, p.column, std::move(message)};
}

Diagnostic JsonDoc::atKey(const std::string& pointer, std::string message) const {
  SourcePos p = keyPos(pointer);
  return {p.line, p.column, std::move(message)};
}

std::string JsonDoc::child(const std::string& pointer, std::string_view key) {
  std::string out = pointer + "/";
  for (char c : key) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

std::string JsonDoc::child(const std::string& pointer, size_t index) {
  return pointer + "/" + std::to_string(index);
}

Result<std::string> standardizeHuJson(std::string_view text) {
  std::string out(text);
  auto fail = [&](size_t offset, std::string message) -> Result<std::string> {
    return diagAt(lineStarts(text), offset, std::move(message));
  };
  // Pass 1: comments → spaces (newlines kept so line numbers stay put).
  for (size_t i = 0; i < out.size();) {
    char c = out[i];
    if (c == '"') {
      i = skipString(out, i);
    } else if (c == '/' && i + 1 < out.size() && out[i + 1] == '/') {
      for (; i < out.size() && out[i] != '\n'; ++i) out[i] = ' ';
    } else if (c == '/' && i + 1 < out.size() && out[i + 1] == '*') {
      size_t end = out.find("*/", i + 2);
      if (end == std::string::npos) {
        return fail(i, "unterminated /* comment: close it with */");
      }
      for (size_t j = i; j < end + 2; ++j) {
        if (out[j] != '\n') out[j] = ' ';
      }
      i = end + 2;
    } else if (c == '/') {
      return fail(i, "unexpected '/': comments start with // or /*");
    } else {
      ++i;
    }
  }
  // Pass 2: a comma after a value and before (whitespace and) a closing bracket is a trailing
  // comma. "[1,,]" and "[,]" stay invalid.
  char before = 0;  // last non-space character before i
  for (size_t i = 0; i < out.size();) {
    char c = out[i];
    if (c == '"') {
      i = skipString(out, i);
      before = '"';
      continue;
    }
    if (c == ',' && before != ',' && before != '[' && before != '{') {
      size_t j = i + 1;
      while (j < out.size() && isSpace(out[j])) ++j;
      if (j < out.size() && (out[j] == '}' || out[j] == ']')) out[i] = ' ';
    }
    if (!isSpace(c)) before = c;
    ++i;
  }
  return out;
}

Result<JsonDoc> parseHuJson(std::string_view text) {
  Result<std::string> std_text = standardizeHuJson(text);
  if (!std_text) return std_text.errors();
  const std::string& s = std_text.value();
  JsonDoc doc;
  doc.line_starts_ = lineStarts(text);
  auto fail = [&](size_t offset, std::string message) -> Result<JsonDoc> {
    return diagAt(doc.line_starts_, offset, std::move(message));
  };

  size_t first = 0;
  while (first < s.size() && isSpace(s[first])) ++first;
  if (first == s.size()) {
    return Diagnostic{0, 0, "empty document: expected a JSON object such as {\"grants\": []}"};
  }

  // Structural scan: positions of values and keys, duplicate keys, trailing garbage. Malformed
  // input is left for nlohmann to report; the scan only has to not crash on it.
  std::vector<Frame> stack;
  bool root_done = false;
  bool root_object = false;
  auto valueStart = [&](size_t offset) -> std::string {
    std::string ptr;
    if (!stack.empty()) {
      Frame& f = stack.back();
      ptr = f.object ? JsonDoc::child(f.pointer, f.key) : JsonDoc::child(f.pointer, f.index);
    }
    doc.values_.emplace(ptr, static_cast<uint32_t>(offset));
    return ptr;
  };
  for (size_t i = 0; i < s.size();) {
    char c = s[i];
    if (isSpace(c)) {
      ++i;
      continue;
    }
    if (root_done) {
      return fail(i, std::string("trailing garbage after the top-level ") +
                         (root_object ? "object" : "value") +
                         ": remove it, or put everything inside one {...}");
    }
    if (c == '"') {
      size_t end = skipString(s, i);
      if (!stack.empty() && stack.back().object && stack.back().expect_key) {
        Frame& f = stack.back();
        f.key = decodeKey(std::string_view(s).substr(i, end - i));
        if (!f.seen.insert(f.key).second) {
          return fail(i, "duplicate key \"" + f.key + "\": merge the two entries into one");
        }
        doc.keys_.emplace(JsonDoc::child(f.pointer, f.key), static_cast<uint32_t>(i));
        f.expect_key = false;
      } else {
        valueStart(i);
        if (stack.empty()) root_done = true;
      }
      i = end;
    } else if (c == '{' || c == '[') {
      Frame f;
      f.pointer = valueStart(i);
      f.object = c == '{';
      f.expect_key = f.object;
      if (stack.empty()) root_object = f.object;
      stack.push_back(std::move(f));
      ++i;
    } else if (c == '}' || c == ']') {
      if (!stack.empty()) stack.pop_back();
      if (stack.empty()) root_done = true;
      ++i;
    } else if (c == ',') {
      if (!stack.empty()) {
        stack.back().index++;
        stack.back().expect_key = stack.back().object;
      }
      ++i;
    } else if (c == ':') {
      if (!stack.empty()) stack.back().expect_key = false;
      ++i;
    } else {
      valueStart(i);
      while (i < s.size() && !isSpace(s[i]) && s[i] != ',' && s[i] != '}' && s[i] != ']' &&
             s[i] != ':' && s[i] != '"' && s[i] != '{' && s[i] != '[') {
        ++i;
      }
      if (stack.empty()) root_done = true;
    }
  }

  try {
    doc.root_ = nlohmann::json::parse(s);
  } catch (const nlohmann::json::parse_error& e) {
    size_t offset = e.byte == 0 ? 0 : std::min<size_t>(e.byte - 1, s.empty() ? 0 : s.size() - 1);
    // nlohmann reports where it gave up; point at the start of a bad literal or number instead.
    std::string what = e.what();
    if (what.find("invalid literal") != std::string::npos ||
        what.find("invalid number") != std::string::npos) {
      if (offset > 0 && !tokenChar(s[offset]) && tokenChar(s[offset - 1])) --offset;
      while (offset > 0 && tokenChar(s[offset - 1])) --offset;
    }
    return fail(offset, "invalid JSON: " + nlohmannReason(e.what()));
  } catch (const nlohmann::json::exception& e) {
    return fail(first, std::string("invalid JSON: ") + e.what());
  }
  return doc;
}

}  // namespace gatehouse::control
