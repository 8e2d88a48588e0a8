#include "proxy/tools/shell_parse.h"

#include <array>
#include <nlohmann/json.hpp>
#include <optional>

namespace gatehouse::proxy::tools {
namespace {

bool isBlank(char c) { return c == ' ' || c == '\t'; }

// Characters that end an unquoted word.
bool isMeta(char c) {
  return isBlank(c) || c == '\n' || c == ';' || c == '&' || c == '|' || c == '(' || c == ')' ||
         c == '<' || c == '>';
}

bool isNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool isNameChar(char c) { return isNameStart(c) || (c >= '0' && c <= '9'); }

bool isName(std::string_view s) {
  if (s.empty() || !isNameStart(s[0])) return false;
  for (char c : s) {
    if (!isNameChar(c)) return false;
  }
  return true;
}

// Words that structure a script but run nothing, dropped from the front of a command.
bool isStructuralWord(std::string_view w) {
  static constexpr std::array<std::string_view, 13> kWords = {
      "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "time", "{", "}"};
  for (std::string_view k : kWords) {
    if (w == k) return true;
  }
  return false;
}

struct Word {
  std::string text;
  bool quoted = false;      // some part was quoted or substituted
  bool assignment = false;  // NAME=value with an unquoted NAME
};

struct Heredoc {
  std::string delimiter;
  bool strip_tabs = false;
};

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  ShellParse run() {
    ShellParse out;
    if (s_.size() > kMaxShellBytes) {
      fail("script longer than " + std::to_string(kMaxShellBytes) + " bytes");
    } else {
      parseList(0, false);
    }
    if (!error_.empty()) {
      out.ok = false;
      out.error = error_;
      return out;
    }
    out.commands = std::move(commands_);
    return out;
  }

 private:
  bool fail(std::string why) {
    if (error_.empty()) error_ = std::move(why);
    return false;
  }
  bool eof() const { return i_ >= s_.size(); }
  char peek(size_t ahead = 0) const { return i_ + ahead < s_.size() ? s_[i_ + ahead] : '\0'; }

  // Ends the current command. Reserved words were already dropped from its front.
  bool finish(ShellCommand& cur) {
    if (!cur.argv.empty() || !cur.env.empty() || !cur.redirects.empty()) {
      if (commands_.size() >= kMaxShellCommands) return fail("too many commands");
      commands_.push_back(std::move(cur));
    }
    cur = ShellCommand{};
    return true;
  }

  void addWord(ShellCommand& cur, Word w) {
    if (cur.argv.empty()) {
      if (!w.quoted && isStructuralWord(w.text)) return;
      if (w.assignment) {
        cur.env.push_back(std::move(w.text));
        return;
      }
    }
    cur.argv.push_back(std::move(w.text));
  }

  // A list of commands up to the end of input, or up to the `)` closing a subshell or a
  // substitution when `nested` (the `)` is consumed).
  bool parseList(int depth, bool nested) {
    if (depth > kMaxShellDepth) return fail("nesting deeper than " + std::to_string(depth));
    ShellCommand cur;
    while (error_.empty()) {
      while (!eof() && isBlank(peek())) ++i_;
      if (eof()) {
        if (nested) return fail("unterminated ( or $(");
        return finish(cur);
      }
      char c = peek();
      if (c == '\\' && peek(1) == '\n') {
        i_ += 2;
      } else if (c == '#') {
        while (!eof() && peek() != '\n') ++i_;
      } else if (c == '\n') {
        if (!finish(cur)) return false;
        ++i_;
        readHeredocs();
      } else if (c == ';') {
        if (!finish(cur)) return false;
        i_ += peek(1) == ';' ? 2 : 1;
      } else if (c == '&' && peek(1) == '>') {
        if (!redirect(cur, depth)) return false;
      } else if (c == '&' || c == '|') {
        if (!finish(cur)) return false;
        i_ += (peek(1) == c || (c == '|' && peek(1) == '&')) ? 2 : 1;
      } else if (c == '(') {
        if (!cur.argv.empty() && peek(1) == ')') {
          // `name()` starts a function definition: its body's commands follow as a group.
          cur = ShellCommand{};
          i_ += 2;
        } else if (cur.argv.empty() && peek(1) == '(') {
          if (!skipArithmetic()) return false;
        } else {
          if (!finish(cur)) return false;
          ++i_;
          if (!parseList(depth + 1, true)) return false;
        }
      } else if (c == ')') {
        if (!nested) return fail("unmatched )");
        ++i_;
        return finish(cur);
      } else if ((c == '<' || c == '>') && peek(1) == '(') {
        auto w = readWord(depth);
        if (!w) return false;
        addWord(cur, std::move(*w));
      } else if (c == '<' || c == '>') {
        if (!redirect(cur, depth)) return false;
      } else if (cur.argv.empty() && cur.env.empty() && startsWord("[[")) {
        if (!readTest(cur)) return false;
      } else if (ioNumberAhead()) {
        if (!redirect(cur, depth)) return false;
      } else {
        auto w = readWord(depth);
        if (!w) return false;
        addWord(cur, std::move(*w));
      }
    }
    return false;
  }

  bool startsWord(std::string_view w) const {
    if (s_.substr(i_, w.size()) != w) return false;
    size_t after = i_ + w.size();
    return after >= s_.size() || isMeta(s_[after]);
  }

  // Digits directly followed by < or >: a file descriptor number (2>&1).
  bool ioNumberAhead() const {
    size_t j = i_;
    while (j < s_.size() && s_[j] >= '0' && s_[j] <= '9') ++j;
    return j > i_ && j < s_.size() && (s_[j] == '<' || s_[j] == '>');
  }

  // `[[ … ]]`: its && || < > ( ) are operands, not operators. Words split on blanks.
  bool readTest(ShellCommand& cur) {
    while (error_.empty()) {
      while (!eof() && isBlank(peek())) ++i_;
      if (eof() || peek() == '\n') return fail("unterminated [[");
      size_t start = i_;
      while (!eof() && !isBlank(peek()) && peek() != '\n') ++i_;
      std::string w(s_.substr(start, i_ - start));
      cur.argv.push_back(w);
      if (w == "]]") return true;
    }
    return false;
  }

  // `(( … ))` as a command: arithmetic, runs nothing.
  bool skipArithmetic() {
    int depth = 0;
    for (; !eof(); ++i_) {
      if (peek() == '(') ++depth;
      if (peek() == ')' && --depth == 0) {
        ++i_;
        return true;
      }
    }
    return fail("unterminated ((");
  }

  bool redirect(ShellCommand& cur, int depth) {
    size_t start = i_;
    while (!eof() && peek() >= '0' && peek() <= '9') ++i_;
    static constexpr std::array<std::string_view, 12> kOps = {"&>>", "<<<", "<<-", "<<", "<>", "<&",
                                                              ">>",  ">&",  ">|",  "&>", "<",  ">"};
    std::string_view op;
    for (std::string_view o : kOps) {
      if (s_.substr(i_, o.size()) == o) {
        op = o;
        break;
      }
    }
    i_ += op.size();
    while (!eof() && isBlank(peek())) ++i_;
    if (eof() || (isMeta(peek()) && !(peek() == '<' || peek() == '>'))) {
      return fail("redirection without a target");
    }
    std::string prefix(s_.substr(start, i_ - start));
    while (!prefix.empty() && isBlank(prefix.back())) prefix.pop_back();
    auto target = readWord(depth);
    if (!target) return false;
    if (op == "<<" || op == "<<-") heredocs_.push_back({target->text, op == "<<-"});
    cur.redirects.push_back(prefix + target->text);
    return true;
  }

  // Bodies of the here-documents announced on the line just ended.
  void readHeredocs() {
    for (const Heredoc& h : heredocs_) {
      while (!eof()) {
        size_t nl = s_.find('\n', i_);
        std::string_view line = s_.substr(i_, nl == std::string_view::npos ? s_.npos : nl - i_);
        i_ = nl == std::string_view::npos ? s_.size() : nl + 1;
        if (h.strip_tabs) {
          while (!line.empty() && line.front() == '\t') line.remove_prefix(1);
        }
        if (line == h.delimiter) break;
      }
    }
    heredocs_.clear();
  }

  // One word at i_ (which is not a blank or an operator, except for `<(` / `>(`).
  std::optional<Word> readWord(int depth) {
    Word w;
    size_t eq = std::string::npos;
    bool quoted_before_eq = false;
    auto quoted = [&] {
      w.quoted = true;
      if (eq == std::string::npos) quoted_before_eq = true;
    };
    if ((peek() == '<' || peek() == '>') && peek(1) == '(') {
      quoted();
      if (!substitution(w.text, depth, 2)) return std::nullopt;
    }
    while (!eof() && error_.empty()) {
      char c = peek();
      if (isMeta(c)) break;
      if (c == '\\') {
        if (peek(1) == '\n') {
          i_ += 2;
          continue;
        }
        quoted();
        if (i_ + 1 < s_.size()) w.text += s_[i_ + 1];
        i_ += 2;
      } else if (c == '\'') {
        quoted();
        size_t end = s_.find('\'', i_ + 1);
        if (end == std::string_view::npos) {
          fail("unterminated '");
          return std::nullopt;
        }
        w.text.append(s_.substr(i_ + 1, end - i_ - 1));
        i_ = end + 1;
      } else if (c == '"') {
        quoted();
        if (!doubleQuoted(w.text, depth)) return std::nullopt;
      } else if (c == '$' && peek(1) == '\'') {
        quoted();
        if (!ansiC(w.text)) return std::nullopt;
      } else if (c == '$' || c == '`') {
        quoted();
        if (!dollarOrBackquote(w.text, depth)) return std::nullopt;
      } else {
        if (c == '=' && eq == std::string::npos) eq = w.text.size();
        w.text += c;
        ++i_;
      }
    }
    if (!error_.empty()) return std::nullopt;
    w.assignment = eq != std::string::npos && !quoted_before_eq &&
                   isName(std::string_view(w.text).substr(0, eq));
    return w;
  }

  // At an opening ": appends the content with quotes removed, i_ past the closing ".
  bool doubleQuoted(std::string& out, int depth) {
    ++i_;
    while (!eof()) {
      char c = peek();
      if (c == '"') {
        ++i_;
        return true;
      }
      if (c == '\\') {
        char n = peek(1);
        if (n == '\n') {
          i_ += 2;
        } else if (n == '$' || n == '`' || n == '"' || n == '\\') {
          out += n;
          i_ += 2;
        } else {
          out += c;
          ++i_;
        }
      } else if (c == '$' || c == '`') {
        if (!dollarOrBackquote(out, depth)) return false;
      } else {
        out += c;
        ++i_;
      }
    }
    return fail("unterminated \"");
  }

  // $'…' with C escapes.
  bool ansiC(std::string& out) {
    i_ += 2;
    while (!eof()) {
      char c = peek();
      if (c == '\'') {
        ++i_;
        return true;
      }
      if (c == '\\' && i_ + 1 < s_.size()) {
        char n = s_[i_ + 1];
        switch (n) {
          case 'n':
            out += '\n';
            break;
          case 't':
            out += '\t';
            break;
          case 'r':
            out += '\r';
            break;
          case '0':
            out += '\0';
            break;
          default:
            out += n;  // \\ \' \" and anything unknown
        }
        i_ += 2;
      } else {
        out += c;
        ++i_;
      }
    }
    return fail("unterminated $'");
  }

  // At `$` or a backquote: a substitution (its commands are recorded), or an expansion kept
  // literally. Appends the source text to `out`.
  bool dollarOrBackquote(std::string& out, int depth) {
    if (peek() == '`') return backquote(out, depth);
    if (peek(1) == '(' && peek(2) == '(') return balanced(out, '(', ')', "$((");
    if (peek(1) == '(') return substitution(out, depth, 2);
    if (peek(1) == '{') return balanced(out, '{', '}', "${");
    out += '$';
    ++i_;
    return true;
  }

  // Text from i_ (at `$`) to the close matching the first `open`, copied as written.
  bool balanced(std::string& out, char open, char close, const char* what) {
    size_t start = i_;
    int level = 0;
    for (; !eof(); ++i_) {
      char c = peek();
      if (c == '\\') {
        ++i_;
        continue;
      }
      if (c == open) ++level;
      if (c == close && --level == 0) {
        ++i_;
        out.append(s_.substr(start, i_ - start));
        return true;
      }
    }
    return fail(std::string("unterminated ") + what);
  }

  // `$(`, `<(` or `>(`: the inner list is parsed in place; the outer word keeps the text.
  bool substitution(std::string& out, int depth, size_t open_len) {
    size_t start = i_;
    i_ += open_len;
    if (!parseList(depth + 1, true)) return false;
    out.append(s_.substr(start, i_ - start));
    return true;
  }

  bool backquote(std::string& out, int depth) {
    if (depth + 1 > kMaxShellDepth) return fail("nesting too deep");
    size_t start = i_++;
    std::string inner;
    while (!eof() && peek() != '`') {
      if (peek() == '\\' && (peek(1) == '`' || peek(1) == '\\' || peek(1) == '$')) ++i_;
      inner += peek();
      ++i_;
    }
    if (eof()) return fail("unterminated `");
    ++i_;
    out.append(s_.substr(start, i_ - start));
    Parser sub(inner);
    sub.parseList(depth + 1, false);
    if (!sub.error_.empty()) return fail(sub.error_);
    for (auto& c : sub.commands_) {
      if (commands_.size() >= kMaxShellCommands) return fail("too many commands");
      commands_.push_back(std::move(c));
    }
    return true;
  }

  std::string_view s_;
  size_t i_ = 0;
  std::vector<ShellCommand> commands_;
  std::vector<Heredoc> heredocs_;
  std::string error_;
};

bool isShellProgram(std::string_view p) {
  size_t slash = p.rfind('/');
  if (slash != std::string_view::npos) p.remove_prefix(slash + 1);
  return p == "sh" || p == "bash" || p == "zsh" || p == "dash" || p == "ksh";
}

}  // namespace

ShellParse parseShell(std::string_view script) { return Parser(script).run(); }

std::string shellScriptOf(const std::vector<std::string>& argv) {
  if (argv.size() < 3 || !isShellProgram(argv[0])) return "";
  for (size_t i = 1; i + 1 < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a.size() < 2 || a[0] != '-' || a[1] == '-') return "";
    if (a.find('c') != std::string::npos) return argv[i + 1];
  }
  return "";
}

nlohmann::json toJson(const std::vector<ShellCommand>& commands) {
  auto out = nlohmann::json::array();
  for (const ShellCommand& c : commands) {
    nlohmann::json j = {{"argv", c.argv}};
    if (!c.env.empty()) j["env"] = c.env;
    if (!c.redirects.empty()) j["redirects"] = c.redirects;
    out.push_back(std::move(j));
  }
  return out;
}

std::string commandLine(const ShellCommand& command) {
  std::string out;
  for (const std::string& a : command.argv) {
    if (!out.empty()) out += ' ';
    out += a;
  }
  return out;
}

}  // namespace gatehouse::proxy::tools
