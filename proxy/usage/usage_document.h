// The part of a provider's JSON document the usage tap reads, and nothing else.
//
// What is kept: the scalars of the top-level object, of "message" and "response" (Anthropic
// message_start, Responses events; same rules recursively), of "delta", and of each element of
// "choices" / "output"; "usage", "error" and "incomplete_details" whole. Every other container
// becomes null, so its key still exists and the last of duplicate keys still wins, exactly as in
// the full document. A top-level array keeps its scalar elements.
//
// readUsageDocument skims: the values it does not keep (the content of a response, most of its
// bytes) are stepped over by their structure (strings end at an unescaped quote, brackets nest
// and match) without being lexed; what it keeps is read exactly as nlohmann::json reads it. It
// fails on a document that is cut short, has unbalanced or mismatched brackets, trailing bytes
// (before a NUL byte, which nlohmann/json reads as the end of its input), or
// a kept value that is not valid JSON; the content it steps over is not validated further.
// readUsageDocumentFull lexes the whole document with nlohmann::json (SAX) and fails on any
// invalid byte. On valid JSON both give the same document (tests/fuzz/usage_tap_fuzz.cc checks
// this on every input).
//
// Thread safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

namespace gatehouse::proxy {

bool readUsageDocument(std::string_view text, nlohmann::json& out);
bool readUsageDocumentFull(std::string_view text, nlohmann::json& out);

}  // namespace gatehouse::proxy
