// Fuzz target: the shell parser on arbitrary text. Any crash, sanitizer report or escaped
// exception is a bug; so is a parse that fails without a reason, keeps commands when it failed,
// or yields more commands than its bound.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>

#include "proxy/tools/shell_parse.h"

using namespace gatehouse::proxy::tools;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view script(reinterpret_cast<const char*>(data), size);
  ShellParse p = parseShell(script);
  if (!p.ok && (p.error.empty() || !p.commands.empty())) __builtin_trap();
  if (p.commands.size() > kMaxShellCommands) __builtin_trap();
  for (const ShellCommand& c : p.commands) {
    if (c.argv.empty() && c.env.empty() && c.redirects.empty()) __builtin_trap();
    (void)commandLine(c);
  }
  (void)toJson(p.commands).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  // The same text as a shell's -c argument.
  (void)shellScriptOf({"bash", "-lc", std::string(script)});
  return 0;
}
