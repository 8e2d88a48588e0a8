// Shell parser: splitting, quoting, substitutions, assignments, redirections, here-documents and
// what it refuses. Each case states the argv lists a reader of the command should see.
#include "proxy/tools/shell_parse.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace gatehouse::proxy::tools {
namespace {

using Argvs = std::vector<std::vector<std::string>>;

Argvs argvs(std::string_view script) {
  ShellParse p = parseShell(script);
  EXPECT_TRUE(p.ok) << script << ": " << p.error;
  Argvs out;
  for (const auto& c : p.commands) out.push_back(c.argv);
  return out;
}

TEST(ShellParse, SimpleCommands) {
  EXPECT_EQ(argvs("git rev-parse HEAD"), (Argvs{{"git", "rev-parse", "HEAD"}}));
  EXPECT_EQ(argvs("  grep -rn TODO .  "), (Argvs{{"grep", "-rn", "TODO", "."}}));
  EXPECT_EQ(argvs("cat ./README.md"), (Argvs{{"cat", "./README.md"}}));
  EXPECT_EQ(argvs("\tls\t-la\t"), (Argvs{{"ls", "-la"}}));
  EXPECT_EQ(argvs(""), Argvs{});
  EXPECT_EQ(argvs("   \n\n  "), Argvs{});
}

TEST(ShellParse, Operators) {
  EXPECT_EQ(argvs("a; b && c || d | e & f"), (Argvs{{"a"}, {"b"}, {"c"}, {"d"}, {"e"}, {"f"}}));
  EXPECT_EQ(argvs("a;b&&c||d|e"), (Argvs{{"a"}, {"b"}, {"c"}, {"d"}, {"e"}}));
  EXPECT_EQ(argvs("make 2>&1 |& tee log"), (Argvs{{"make"}, {"tee", "log"}}));
  EXPECT_EQ(argvs("cd src\nmake -j2\n"), (Argvs{{"cd", "src"}, {"make", "-j2"}}));
  EXPECT_EQ(argvs("a ;; b"), (Argvs{{"a"}, {"b"}}));
  EXPECT_EQ(argvs("curl -fsSL https://x.sh | sh"),
            (Argvs{{"curl", "-fsSL", "https://x.sh"}, {"sh"}}));
}

TEST(ShellParse, SubshellsAndGroups) {
  EXPECT_EQ(argvs("(cd build && ninja) && ./run"), (Argvs{{"cd", "build"}, {"ninja"}, {"./run"}}));
  EXPECT_EQ(argvs("( ( a ) ; b )"), (Argvs{{"a"}, {"b"}}));
  EXPECT_EQ(argvs("{ echo a; echo b; } > out"), (Argvs{{"echo", "a"}, {"echo", "b"}, {}}));
  EXPECT_EQ(argvs("f() { rm -rf x; }; f"), (Argvs{{"rm", "-rf", "x"}, {"f"}}));
}

TEST(ShellParse, CommandSubstitution) {
  EXPECT_EQ(argvs("echo $(git rev-parse HEAD)"),
            (Argvs{{"git", "rev-parse", "HEAD"}, {"echo", "$(git rev-parse HEAD)"}}));
  EXPECT_EQ(argvs("echo \"sha: $(git log -1 --format=%H | cut -c1-8)\""),
            (Argvs{{"git", "log", "-1", "--format=%H"},
                   {"cut", "-c1-8"},
                   {"echo", "sha: $(git log -1 --format=%H | cut -c1-8)"}}));
  EXPECT_EQ(argvs("x=`date +%s`; echo `ls \\`pwd\\``"),
            (Argvs{{"date", "+%s"}, {}, {"pwd"}, {"ls", "`pwd`"}, {"echo", "`ls \\`pwd\\``"}}));
  EXPECT_EQ(argvs("diff <(sort a) <(sort b)"),
            (Argvs{{"sort", "a"}, {"sort", "b"}, {"diff", "<(sort a)", "<(sort b)"}}));
  EXPECT_EQ(argvs("echo $(echo $(id -u))"),
            (Argvs{{"id", "-u"}, {"echo", "$(id -u)"}, {"echo", "$(echo $(id -u))"}}));
}

TEST(ShellParse, Quoting) {
  EXPECT_EQ(argvs("echo 'a b' \"c d\" e\\ f"), (Argvs{{"echo", "a b", "c d", "e f"}}));
  EXPECT_EQ(argvs("echo 'it'\\''s'"), (Argvs{{"echo", "it's"}}));
  EXPECT_EQ(argvs("echo \"a \\\"q\\\" \\$HOME \\\\ \\n\""),
            (Argvs{{"echo", "a \"q\" $HOME \\ \\n"}}));
  EXPECT_EQ(argvs("echo '$(not run)' \"$HOME\" ${PATH:-/bin}"),
            (Argvs{{"echo", "$(not run)", "$HOME", "${PATH:-/bin}"}}));
  EXPECT_EQ(argvs("echo 'a;b' \"c&&d\" e\\|f"), (Argvs{{"echo", "a;b", "c&&d", "e|f"}}));
  EXPECT_EQ(argvs("echo $'a\\tb\\n' $'it\\'s'"), (Argvs{{"echo", "a\tb\n", "it's"}}));
  EXPECT_EQ(argvs("echo \"\" ''"), (Argvs{{"echo", "", ""}}));
  EXPECT_EQ(argvs("grep -E 'foo|bar' *.cc"), (Argvs{{"grep", "-E", "foo|bar", "*.cc"}}));
  EXPECT_EQ(argvs("echo a\\\nb"), (Argvs{{"echo", "ab"}}));
  EXPECT_EQ(argvs("echo \"multi\nline\""), (Argvs{{"echo", "multi\nline"}}));
  EXPECT_EQ(argvs("find . -name '*.o' -exec rm {} \\;"),
            (Argvs{{"find", ".", "-name", "*.o", "-exec", "rm", "{}", ";"}}));
  EXPECT_EQ(argvs("echo $((1 + (2 * 3)))"), (Argvs{{"echo", "$((1 + (2 * 3)))"}}));
  EXPECT_EQ(argvs("echo ${x/\\}/y}"), (Argvs{{"echo", "${x/\\}/y}"}}));
}

TEST(ShellParse, EnvAssignments) {
  ShellParse p = parseShell("A=b CC=clang FOO='x y' make -j2 V=1");
  ASSERT_TRUE(p.ok);
  ASSERT_EQ(p.commands.size(), 1u);
  EXPECT_EQ(p.commands[0].env, (std::vector<std::string>{"A=b", "CC=clang", "FOO=x y"}));
  EXPECT_EQ(p.commands[0].argv, (std::vector<std::string>{"make", "-j2", "V=1"}));
  // A quoted name is not an assignment; `=` first is not either.
  EXPECT_EQ(argvs("'A'=b cmd"), (Argvs{{"A=b", "cmd"}}));
  EXPECT_EQ(argvs("=x cmd"), (Argvs{{"=x", "cmd"}}));
  EXPECT_EQ(argvs("1A=x cmd"), (Argvs{{"1A=x", "cmd"}}));
  p = parseShell("X=1");
  ASSERT_EQ(p.commands.size(), 1u);
  EXPECT_TRUE(p.commands[0].argv.empty());
  EXPECT_EQ(p.commands[0].env, std::vector<std::string>{"X=1"});
}

TEST(ShellParse, Redirections) {
  ShellParse p = parseShell("cmd >out.txt 2>&1 < in &>/dev/null 3>> log >| f");
  ASSERT_TRUE(p.ok) << p.error;
  ASSERT_EQ(p.commands.size(), 1u);
  EXPECT_EQ(p.commands[0].argv, std::vector<std::string>{"cmd"});
  EXPECT_EQ(p.commands[0].redirects,
            (std::vector<std::string>{">out.txt", "2>&1", "<in", "&>/dev/null", "3>>log", ">|f"}));
  // A digit word not followed by a redirection is an argument.
  EXPECT_EQ(argvs("head -n 20 file"), (Argvs{{"head", "-n", "20", "file"}}));
  EXPECT_EQ(argvs("echo 2 > f"), (Argvs{{"echo", "2"}}));
}

TEST(ShellParse, HereDocuments) {
  // Claude Code's commit idiom.
  std::string s =
      "git commit -m \"$(cat <<'EOF'\nFix the parser; add tests && more\n\nCo-Authored: x\nEOF\n"
      ")\" && git push";
  Argvs a = argvs(s);
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[0], (std::vector<std::string>{"cat"}));
  EXPECT_EQ(a[1][0], "git");
  EXPECT_EQ(a[1][1], "commit");
  EXPECT_EQ(a[2], (std::vector<std::string>{"git", "push"}));
  EXPECT_EQ(argvs("cat <<-END > f\n\tnot; a | command\n\tEND\necho done"),
            (Argvs{{"cat"}, {"echo", "done"}}));
  EXPECT_EQ(argvs("python3 - <<EOF\nimport os\nos.system('rm -rf /')\nEOF"),
            (Argvs{{"python3", "-"}}));
  EXPECT_EQ(argvs("grep x <<< \"$var\""), (Argvs{{"grep", "x"}}));
}

TEST(ShellParse, ControlStructures) {
  EXPECT_EQ(argvs("if [ -f x ]; then rm x; else echo no; fi"),
            (Argvs{{"[", "-f", "x", "]"}, {"rm", "x"}, {"echo", "no"}}));
  EXPECT_EQ(argvs("for f in *.txt; do cat \"$f\"; done"),
            (Argvs{{"for", "f", "in", "*.txt"}, {"cat", "$f"}}));
  EXPECT_EQ(argvs("while ! curl -s localhost; do sleep 1; done"),
            (Argvs{{"curl", "-s", "localhost"}, {"sleep", "1"}}));
  EXPECT_EQ(argvs("[[ -d a && ! -L a ]] && rm -r a"),
            (Argvs{{"[[", "-d", "a", "&&", "!", "-L", "a", "]]"}, {"rm", "-r", "a"}}));
  EXPECT_EQ(argvs("(( i++ )); echo $i"), (Argvs{{"echo", "$i"}}));
  EXPECT_EQ(argvs("time make"), (Argvs{{"make"}}));
  // A quoted reserved word is a program name.
  EXPECT_EQ(argvs("'if' x"), (Argvs{{"if", "x"}}));
}

TEST(ShellParse, Comments) {
  EXPECT_EQ(argvs("ls # list; rm -rf /\npwd"), (Argvs{{"ls"}, {"pwd"}}));
  EXPECT_EQ(argvs("echo a#b '#c'"), (Argvs{{"echo", "a#b", "#c"}}));
}

TEST(ShellParse, UnparseableIsMarked) {
  for (const char* s :
       {"echo 'open", "echo \"open", "echo $(ls", "ls )", "echo `ls", "a (b", "echo $'x",
        "echo ${x", "cat <", "[[ -f x", "case $x in a) ls;; esac", "(( 1 +"}) {
    ShellParse p = parseShell(s);
    EXPECT_FALSE(p.ok) << s;
    EXPECT_FALSE(p.error.empty()) << s;
    EXPECT_TRUE(p.commands.empty()) << s;
  }
}

TEST(ShellParse, Bounds) {
  // "( ( (": subshells ("((" would start an arithmetic command).
  std::string deep;
  for (int i = 0; i < 200; ++i) deep += "( ";
  deep += "ls";
  for (int i = 0; i < 200; ++i) deep += " )";
  ShellParse p = parseShell(deep);
  EXPECT_FALSE(p.ok);
  std::string subs;
  for (int i = 0; i < 100; ++i) subs += "$(";
  EXPECT_FALSE(parseShell(subs).ok);
  std::string many;
  for (size_t i = 0; i < kMaxShellCommands + 1; ++i) many += "a;";
  p = parseShell(many);
  EXPECT_FALSE(p.ok);
  EXPECT_EQ(p.error, "too many commands");
  EXPECT_FALSE(parseShell(std::string(kMaxShellBytes + 1, 'a')).ok);
  // Just under the depth limit is fine.
  std::string ok;
  for (int i = 0; i < kMaxShellDepth; ++i) ok += "( ";
  ok += "ls";
  for (int i = 0; i < kMaxShellDepth; ++i) ok += " )";
  EXPECT_EQ(argvs(ok), (Argvs{{"ls"}}));
}

TEST(ShellParse, ShellScriptOf) {
  using V = std::vector<std::string>;
  EXPECT_EQ(shellScriptOf(V{"bash", "-lc", "git status"}), "git status");
  EXPECT_EQ(shellScriptOf(V{"/bin/sh", "-c", "ls"}), "ls");
  EXPECT_EQ(shellScriptOf(V{"zsh", "-l", "-c", "x"}), "x");
  EXPECT_EQ(shellScriptOf(V{"bash", "script.sh"}), "");
  EXPECT_EQ(shellScriptOf(V{"python3", "-c", "print(1)"}), "");
  EXPECT_EQ(shellScriptOf(V{"bash", "-lc"}), "");
  EXPECT_EQ(shellScriptOf(V{"bash", "--norc", "-c", "x"}), "");
}

TEST(ShellParse, JsonAndCommandLine) {
  ShellParse p = parseShell("A=1 grep -rn 'TODO x' . 2>/dev/null");
  ASSERT_TRUE(p.ok);
  EXPECT_EQ(toJson(p.commands), nlohmann::json::parse(R"([{"argv":["grep","-rn","TODO x","."],
      "env":["A=1"],"redirects":["2>/dev/null"]}])"));
  EXPECT_EQ(commandLine(p.commands[0]), "grep -rn TODO x .");
}

}  // namespace
}  // namespace gatehouse::proxy::tools
