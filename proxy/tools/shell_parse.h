// Shell parser for tool-call records: turns the command text an agent asked a shell to run
// (Claude Code `Bash.command`, Codex `shell` scripts, Gemini `run_shell_command.command`) into the
// simple commands it contains, each with its argv, so that `git rev-parse HEAD`, `grep -rn TODO .`
// and `cat ./README.md` are each queryable and a guardrail can look at programs and flags.
//
// It is a reader of POSIX/bash syntax, not a shell: nothing is expanded or executed.
//   - Commands are split on `;`, `&`, `&&`, `||`, `|`, `|&` and newlines; `( … )` subshells and
//     `{ …; }` groups contribute their inner commands; `$( … )`, backquotes and `<( … )` /
//     `>( … )` contribute their inner commands (before the command that contains them, the order
//     a shell runs them in) and stay as literal text inside the outer word.
//   - Quoting: '…' is literal; "…" keeps `$`-expansions literal and removes the backslash before
//     `$ \` " \\` and newline; $'…' decodes the usual C escapes; an unquoted backslash quotes the
//     next character (backslash-newline joins lines). Quote characters are removed from argv.
//   - Parameter and arithmetic expansions (`$x`, `${x:-y}`, `$((1+2))`) stay as written.
//   - Leading `NAME=value` words are environment assignments (ShellCommand::env), not argv.
//   - Redirections (`>f`, `2>&1`, `<<EOF`, `&>/dev/null`, …) leave argv and go to `redirects`
//     as operator plus target ("2>&1", ">/dev/null"); here-document bodies are skipped.
//   - Reserved words that only structure the script (`if then else elif fi do done while until
//     ! time { }`) are dropped from the front of a command; a command left empty is dropped.
//     `for`/`select` headers and `[[ … ]]` stay as plain commands. `case` patterns are not
//     understood (their `)` is unmatched), so a script with a `case` is unparseable.
//   - `#` at the start of a word begins a comment.
// What it cannot read (an unterminated quote or substitution, an unmatched `)`, nesting deeper
// than kMaxDepth, input over kMaxBytes, more than kMaxCommands commands) is marked `ok = false`
// with a reason and no commands: the caller keeps the raw text.
//
// Thread safety: pure function, no state. Sans-I/O.
#pragma once

#include <cstddef>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace gatehouse::proxy::tools {

struct ShellCommand {
  std::vector<std::string> argv;       // program first; quotes removed
  std::vector<std::string> env;        // leading NAME=value assignments, as words
  std::vector<std::string> redirects;  // e.g. "2>&1", ">/dev/null", "<<EOF"
  bool operator==(const ShellCommand&) const = default;
};

struct ShellParse {
  std::vector<ShellCommand> commands;
  bool ok = true;
  std::string error;  // why it did not parse (ok == false)
  bool operator==(const ShellParse&) const = default;
};

inline constexpr size_t kMaxShellBytes = 1 << 20;
inline constexpr int kMaxShellDepth = 64;
inline constexpr size_t kMaxShellCommands = 4096;

ShellParse parseShell(std::string_view script);

// When `argv` is a shell invoked on a script (`bash -lc "…"`, `sh -c …`, `/bin/zsh -c …`, as Codex
// sends), the script; otherwise empty.
std::string shellScriptOf(const std::vector<std::string>& argv);

// `[{"argv": [...], "env": [...] (when any), "redirects": [...] (when any)}, ...]`.
nlohmann::json toJson(const std::vector<ShellCommand>& commands);

// argv joined with single spaces: the form the command-prefix filter matches on.
std::string commandLine(const ShellCommand& command);

}  // namespace gatehouse::proxy::tools
