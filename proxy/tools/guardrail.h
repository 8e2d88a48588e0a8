// Guardrail rules over tool calls (issue 6, "Guardrails"): which calls an operator wants flagged
// or blocked, matched on the call's type, tool name, parsed argv (program, flags and other
// arguments, path globs) and RE2 patterns over its command or arguments. This is the sans-I/O
// evaluator and the built-in rule set; stream_guard.h (streams) and json_guard.h (JSON answers)
// enforce its blocking rules in the gateway, and every match is recorded on the call.
//
// A rule matches a call when every condition it sets holds:
//   types, tools    the call's type / name is one of these
//   programs        shell calls: some parsed command runs one of these programs (argv[0]'s base
//                   name, after wrappers such as sudo, env, nice, nohup, time, command, exec,
//                   doas, xargs and their options)...
//   args            ...and has, for each group, one argument equal to one of the group's words; a
//                   single-letter flag "-r" also matches inside a cluster ("-rf"), a long flag
//                   "--force" also matches "--force=..."
//   paths           globs (fnmatch, '*' stops at '/'; a leading "*/" matches at any depth)
//                   against that command's arguments with trailing slashes removed, or, for
//                   calls with no commands, against the call's target; "~" is literal (the
//                   shell did not expand it either)
//   pattern         RE2, searched in the shell command text, else in the raw arguments
// programs/args/paths are checked per command: `cd / && rm -rf build` does not match a rule for
// `rm -rf /`. A shell call whose command did not parse is matched by `pattern` only.
//
// Rule files are JSON: {"builtin": true|false, "rules": [{"name", "action": "flag"|"block",
// "types", "tools", "programs", "args": [["-r", "-R", "--recursive"], ["-f", "--force"]],
// "paths", "pattern", "message"}]}. Rules with the name of a built-in rule replace it; builtin
// false drops the built-in set.
//
// Thread safety: a Guardrails is immutable after parse; evaluate() may run on any thread.
#pragma once

#include <re2/re2.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/tools/tool_call.h"
#include "wg/status.h"

namespace gatehouse::proxy::tools {

enum class GuardAction : uint8_t { kFlag, kBlock };
std::string_view toString(GuardAction a);  // "flag", "block"

struct GuardRule {
  std::string name;
  GuardAction action = GuardAction::kBlock;
  std::string message;  // what a blocked client is told; defaults to the rule's name
  std::vector<ToolType> types;
  std::vector<std::string> tools;
  std::vector<std::string> programs;
  std::vector<std::vector<std::string>> args;
  std::vector<std::string> paths;
  std::shared_ptr<const RE2> pattern;  // null: no pattern
};

struct GuardMatch {
  std::string rule;
  GuardAction action = GuardAction::kFlag;
  std::string message;
  std::string command;  // the command line that matched, or the call's target / command text
  bool operator==(const GuardMatch&) const = default;
};

class Guardrails {
 public:
  // The built-in set alone.
  static std::shared_ptr<const Guardrails> builtin();
  // A rule file (see above); errors name the rule and the field.
  static Result<std::shared_ptr<const Guardrails>> parse(std::string_view json);

  // Every rule the call matches, in rule order.
  std::vector<GuardMatch> evaluate(const ToolCall& call) const;
  // True when one of `matches` blocks.
  static bool blocks(const std::vector<GuardMatch>& matches);
  const std::vector<GuardRule>& rules() const { return rules_; }

 private:
  std::vector<GuardRule> rules_;
};

}  // namespace gatehouse::proxy::tools
