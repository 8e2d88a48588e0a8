#include "proxy/tools/guardrail.h"

#include <fnmatch.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <nlohmann/json.hpp>

namespace gatehouse::proxy::tools {
namespace {

using nlohmann::json;

// The built-in rule set (issue 6): on by default, each replaceable by name.
constexpr const char* kBuiltinRules = R"json({"rules": [
  {"name": "rm-rf-root", "action": "block",
   "message": "recursive forced delete of /, ~ or a top-level directory",
   "programs": ["rm"], "args": [["-r", "-R", "--recursive"], ["-f", "--force"]],
   "paths": ["/", "/*", "/\\*", "~", "~/\\*", "$HOME", "$HOME/\\*", "${HOME}", "${HOME}/\\*"]},
  {"name": "curl-pipe-shell", "action": "block",
   "message": "a download piped into a shell",
   "types": ["shell"],
   "pattern": "(?:curl|wget)\\b[^|;&]*\\|\\s*(?:sudo\\s+(?:-\\S+\\s+)*)?(?:\\S*/)?(?:ba|z|da|k)?sh\\b"},
  {"name": "chmod-chown-root", "action": "block",
   "message": "recursive chmod or chown of /",
   "programs": ["chmod", "chown", "chgrp"], "args": [["-R", "--recursive"]],
   "paths": ["/", "/\\*"]},
  {"name": "read-credentials", "action": "block",
   "message": "reading SSH keys or cloud credentials",
   "types": ["shell", "file_read", "search"],
   "paths": ["~/.ssh", "~/.ssh/*", "*/.ssh/*", "/root/.ssh/*", "/home/*/.ssh/*", "~/.aws/*",
             "*/.aws/credentials", "*/.aws/config", "~/.config/gcloud/*",
             "*/.config/gcloud/*", "*/application_default_credentials.json", "~/.azure/*",
             "*/.azure/*", "~/.kube/config", "*/.kube/config", "~/.docker/config.json"]},
  {"name": "read-dotenv", "action": "flag",
   "message": "reading a .env file",
   "types": ["shell", "file_read"],
   "paths": [".env", ".env.*", "*/.env", "*/.env.*"]},
  {"name": "force-push-default-branch", "action": "block",
   "message": "force-push to the default branch",
   "programs": ["git"], "args": [["push"], ["-f", "--force", "--force-with-lease"],
                                  ["main", "master", "HEAD:main", "HEAD:master"]]},
  {"name": "dd-block-device", "action": "block",
   "message": "dd onto a block device",
   "programs": ["dd"],
   "paths": ["of=/dev/sd*", "of=/dev/hd*", "of=/dev/vd*", "of=/dev/xvd*", "of=/dev/nvme*",
             "of=/dev/mmcblk*", "of=/dev/disk*", "of=/dev/dm-*", "of=/dev/mapper/*"]},
  {"name": "fork-bomb", "action": "block",
   "message": "a fork bomb",
   "types": ["shell"],
   "pattern": "(\\S+)\\(\\)\\s*\\{[^}]*\\|[^}]*&\\s*\\}\\s*;"}
]})json";

constexpr std::array<std::string_view, 10> kWrappers = {
    "sudo", "doas", "env", "nice", "nohup", "time", "command", "exec", "xargs", "stdbuf"};

std::string baseName(std::string_view p) {
  size_t slash = p.rfind('/');
  return std::string(slash == std::string_view::npos ? p : p.substr(slash + 1));
}

bool isWrapper(std::string_view p) {
  for (std::string_view w : kWrappers) {
    if (p == w) return true;
  }
  return false;
}

// argv without leading wrappers (and their options / NAME=value words).
std::vector<std::string> unwrap(const std::vector<std::string>& argv) {
  size_t i = 0;
  while (i < argv.size() && isWrapper(baseName(argv[i]))) {
    ++i;
    while (i < argv.size() &&
           (argv[i].starts_with("-") || argv[i].find('=') != std::string::npos)) {
      ++i;
    }
  }
  return {argv.begin() + static_cast<std::ptrdiff_t>(i), argv.end()};
}

bool argMatches(const std::string& arg, const std::string& word) {
  if (arg == word) return true;
  // "-r" inside a cluster of single-letter flags ("-rf").
  if (word.size() == 2 && word[0] == '-' && word[1] != '-' && arg.size() > 2 && arg[0] == '-' &&
      arg[1] != '-') {
    return arg.find(word[1], 1) != std::string::npos;
  }
  if (word.starts_with("--") && arg.starts_with(word + "=")) return true;
  return false;
}

std::string trimSlashes(std::string s) {
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

// fnmatch with '*' stopping at '/'; a glob starting "*/" matches its rest at any depth.
bool globMatches(const std::vector<std::string>& globs, const std::string& value) {
  for (const std::string& g : globs) {
    if (fnmatch(g.c_str(), value.c_str(), FNM_PATHNAME) == 0) return true;
    if (!g.starts_with("*/")) continue;
    std::string rest = g.substr(2);
    for (size_t slash = value.find('/'); slash != std::string::npos;
         slash = value.find('/', slash + 1)) {
      if (fnmatch(rest.c_str(), value.c_str() + slash + 1, FNM_PATHNAME) == 0) return true;
    }
  }
  return false;
}

template <typename T>
bool contains(const std::vector<T>& v, const T& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// Does `argv` (one parsed command) satisfy the rule's programs, args and paths?
bool commandMatches(const GuardRule& r, const std::vector<std::string>& raw) {
  std::vector<std::string> argv = unwrap(raw);
  if (argv.empty()) return false;
  if (!r.programs.empty() && !contains(r.programs, baseName(argv[0]))) return false;
  for (const auto& group : r.args) {
    bool any = false;
    for (size_t i = 1; i < argv.size() && !any; ++i) {
      for (const auto& w : group) any = any || argMatches(argv[i], w);
    }
    if (!any) return false;
  }
  if (!r.paths.empty()) {
    bool any = false;
    for (size_t i = 1; i < argv.size() && !any; ++i) {
      any = globMatches(r.paths, trimSlashes(argv[i]));
    }
    if (!any) return false;
  }
  return true;
}

std::string joined(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) out += (out.empty() ? "" : " ") + a;
  return out;
}

Status ruleError(size_t i, const std::string& name, const std::string& what) {
  return Status(EINVAL, "guardrails: rules[" + std::to_string(i) + "]" +
                            (name.empty() ? "" : " (\"" + name + "\")") + ": " + what);
}

// A list of strings, or a list of lists of strings for "args".
bool strings(const json& j, std::vector<std::string>* out) {
  if (!j.is_array()) return false;
  for (const auto& v : j) {
    if (!v.is_string()) return false;
    out->push_back(v.get<std::string>());
  }
  return true;
}

Result<std::vector<GuardRule>> parseRules(const json& list) {
  std::vector<GuardRule> out;
  if (!list.is_array()) return Status(EINVAL, "guardrails: \"rules\" wants a list");
  for (size_t i = 0; i < list.size(); ++i) {
    const json& j = list[i];
    if (!j.is_object()) return ruleError(i, "", "want an object");
    GuardRule r;
    r.name = j.value("name", "");
    if (r.name.empty()) return ruleError(i, "", "\"name\" is required");
    for (const auto& [key, v] : j.items()) {
      std::vector<std::string> words;
      if (key == "name") continue;
      if (key == "action") {
        std::string a = v.is_string() ? v.get<std::string>() : "";
        if (a != "flag" && a != "block") return ruleError(i, r.name, "action: flag or block");
        r.action = a == "block" ? GuardAction::kBlock : GuardAction::kFlag;
      } else if (key == "message" && v.is_string()) {
        r.message = v.get<std::string>();
      } else if (key == "types" && strings(v, &words)) {
        for (const auto& w : words) {
          auto t = parseToolType(w);
          if (!t) return ruleError(i, r.name, "types: unknown type \"" + w + "\"");
          r.types.push_back(*t);
        }
      } else if (key == "tools" && strings(v, &r.tools)) {
      } else if (key == "programs" && strings(v, &r.programs)) {
      } else if (key == "paths" && strings(v, &r.paths)) {
      } else if (key == "args" && v.is_array()) {
        for (const auto& g : v) {
          std::vector<std::string> group;
          if (g.is_string()) {
            group.push_back(g.get<std::string>());
          } else if (!strings(g, &group) || group.empty()) {
            return ruleError(i, r.name, "args: want a list of words or of lists of words");
          }
          r.args.push_back(std::move(group));
        }
      } else if (key == "pattern" && v.is_string()) {
        auto re = std::make_shared<RE2>(v.get<std::string>(), RE2::Quiet);
        if (!re->ok()) return ruleError(i, r.name, "pattern: " + re->error());
        r.pattern = std::move(re);
      } else {
        return ruleError(i, r.name,
                         "unknown or mistyped key \"" + key +
                             "\" (allowed: name, action, message, types, tools, programs, args, "
                             "paths, pattern)");
      }
    }
    if (r.message.empty()) r.message = r.name;
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace

std::string_view toString(GuardAction a) { return a == GuardAction::kBlock ? "block" : "flag"; }

std::shared_ptr<const Guardrails> Guardrails::builtin() {
  static const std::shared_ptr<const Guardrails> set = [] {
    auto g = std::make_shared<Guardrails>();
    auto rules = parseRules(json::parse(kBuiltinRules)["rules"]);
    if (!rules) std::abort();  // the built-in set is checked by a unit test
    g->rules_ = std::move(rules.value());
    return g;
  }();
  return set;
}

Result<std::shared_ptr<const Guardrails>> Guardrails::parse(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return Status(EINVAL, "guardrails: not a JSON object");
  auto g = std::make_shared<Guardrails>();
  bool with_builtin = true;
  if (auto b = j.find("builtin"); b != j.end()) {
    if (!b->is_boolean()) return Status(EINVAL, "guardrails: \"builtin\" wants true or false");
    with_builtin = b->get<bool>();
  }
  std::vector<GuardRule> own;
  if (auto r = j.find("rules"); r != j.end()) {
    auto parsed = parseRules(*r);
    if (!parsed) return parsed.status();
    own = std::move(parsed.value());
  }
  if (with_builtin) {
    for (const GuardRule& b : builtin()->rules_) {
      bool replaced = false;
      for (const GuardRule& o : own) replaced = replaced || o.name == b.name;
      if (!replaced) g->rules_.push_back(b);
    }
  }
  for (auto& r : own) g->rules_.push_back(std::move(r));
  return std::shared_ptr<const Guardrails>(std::move(g));
}

std::vector<GuardMatch> Guardrails::evaluate(const ToolCall& call) const {
  std::vector<GuardMatch> out;
  for (const GuardRule& r : rules_) {
    if (!r.types.empty() && !contains(r.types, call.type)) continue;
    if (!r.tools.empty() && !contains(r.tools, call.name)) continue;
    std::string what;
    bool per_command = !r.programs.empty() || !r.args.empty() || !r.paths.empty();
    if (per_command) {
      bool any = false;
      for (const ShellCommand& c : call.commands) {
        if (commandMatches(r, c.argv)) {
          any = true;
          what = joined(c.argv);
          break;
        }
      }
      // Calls without commands (Read, Grep, ...) offer their target to path-only rules.
      if (!any && call.commands.empty() && r.programs.empty() && r.args.empty() &&
          !call.target.empty() && globMatches(r.paths, trimSlashes(call.target))) {
        any = true;
        what = call.target;
      }
      if (!any) continue;
    }
    if (r.pattern) {
      const std::string& text =
          call.type == ToolType::kShell && !call.command.empty() ? call.command : call.arguments;
      if (!RE2::PartialMatch(text, *r.pattern)) continue;
      if (what.empty()) what = text;
    }
    out.push_back({r.name, r.action, r.message, what});
  }
  return out;
}

bool Guardrails::blocks(const std::vector<GuardMatch>& matches) {
  for (const auto& m : matches) {
    if (m.action == GuardAction::kBlock) return true;
  }
  return false;
}

}  // namespace gatehouse::proxy::tools
