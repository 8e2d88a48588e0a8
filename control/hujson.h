// HuJSON ("human JSON": JSON with // and /* */ comments and trailing commas) → nlohmann::json,
// keeping the source position of every value and key for error messages.
//
// Pipeline: comments become spaces and trailing commas become a space, byte for byte, so every
// offset in the standard JSON is the offset in the user's file; a light structural scan records
// the offset of each value and object key under its JSON pointer ("/grants/0/src/1"); then
// nlohmann::json parses the standard text. Errors (unterminated comment, trailing garbage,
// duplicate key, invalid JSON) come back as Diagnostics at the user's line:column.
//
// Thread safety: plain values; parseHuJson is a pure function.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "control/diagnostic.h"

namespace gatehouse::control {

struct SourcePos {
  int line = 0;    // 1-based; 0 = unknown
  int column = 0;  // 1-based byte column
};

// A parsed document and where each of its parts came from.
class JsonDoc {
 public:
  const nlohmann::json& root() const { return root_; }
  // Position of the value at `pointer` (the first byte of the value); {0,0} if unknown.
  SourcePos valuePos(const std::string& pointer) const;
  // Position of the key naming the member at `pointer`; falls back to the value position.
  SourcePos keyPos(const std::string& pointer) const;
  // Builds a Diagnostic at the value (or key) `pointer`.
  Diagnostic at(const std::string& pointer, std::string message) const;
  Diagnostic atKey(const std::string& pointer, std::string message) const;

  // JSON pointer helpers: child(ptr, "a/b") → ptr + "/a~1b"; child(ptr, 3) → ptr + "/3".
  static std::string child(const std::string& pointer, std::string_view key);
  static std::string child(const std::string& pointer, size_t index);

 private:
  friend Result<JsonDoc> parseHuJson(std::string_view text);
  SourcePos posOf(uint32_t offset) const;

  nlohmann::json root_;
  std::vector<uint32_t> line_starts_;
  std::unordered_map<std::string, uint32_t> values_;
  std::unordered_map<std::string, uint32_t> keys_;
};

// Comments and trailing commas blanked out; same length as `text`. Errors for an unterminated
// block comment or a stray '/'.
Result<std::string> standardizeHuJson(std::string_view text);

// Parses HuJSON. Duplicate object keys are an error (JSON would silently keep the last one).
Result<JsonDoc> parseHuJson(std::string_view text);

}  // namespace gatehouse::control
