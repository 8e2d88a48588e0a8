// Gateway config loading: a golden config, defaults, every validation error at its exact
// line:column, key resolution (env:, file: with permission checks), base_url parsing, the
// Secret type, and the credential/stripping helpers.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "proxy/config/credentials.h"
#include "proxy/config/gateway_config.h"

namespace gatehouse::proxy {
namespace {

constexpr const char* kAnthropicKey = "sk-ant-test-0123456789abcdef";
constexpr const char* kOpenAIKey = "sk-proj-test-fedcba9876543210";

EnvLookup fakeEnv(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

// A temporary directory removed with its files at the end of each test.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/gatehouse-config-test-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  std::string write(const std::string& name, const std::string& text, mode_t mode = 0600) {
    std::string p = path_ + "/" + name;
    std::ofstream(p) << text;
    ::chmod(p.c_str(), mode);
    return p;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

LoadOptions syntaxOnly() {
  LoadOptions o;
  o.file_name = "gw.hujson";
  o.resolve_files = false;
  return o;
}

// The error message of parsing `text` (syntax only unless `opts` says otherwise).
std::string errorOf(const std::string& text, const LoadOptions& opts = syntaxOnly()) {
  auto r = parseGatewayConfig(text, opts);
  EXPECT_FALSE(r.isOk()) << "expected an error for:\n" << text;
  return r.isOk() ? "" : r.status().message();
}

const char* kMinimal = R"({"providers": {"anthropic": {"kind": "anthropic",
  "key": "env:ANTHROPIC_API_KEY", "models": ["claude-*"]}}})";

TEST(GatewayConfig, ParsesGoldenConfig) {
  TempDir dir;
  dir.write("openai.key", std::string(kOpenAIKey) + "\n");
  dir.write("ca.pem", "-----BEGIN CERTIFICATE-----\n");
  dir.write("prices.json", "{}");
  std::string text = R"({
  // The tailnet name and port.
  "version": 1,
  "hostname": "llm",
  "listen": 8080,
  "loopback_listen": "127.0.0.1:0",
  "loopback_identity": {"user": "bench@example.com", "groups": ["group:eng"]},
  "providers": {
    "anthropic": {
      "kind": "anthropic",
      "key": "env:ANTHROPIC_API_KEY",
      "models": ["claude-*"],
      "headers": {"anthropic-beta": "prompt-caching-2024-07-31",},
    },
    "openai": {
      "kind": "openai",
      "base_url": "https://api.openai.com/",
      "key": "file:openai.key",   /* relative to the config's directory */
      "models": ["gpt-*", "o3"],
      "ca_file": "ca.pem",
      "timeouts": {"connect_ms": 2000, "read_ms": 30000},
    },
    "local-vllm": {"kind": "openai_compatible", "base_url": "http://127.0.0.1:8000/serve",
                   "local": true, "models": ["meta-llama/*"]},
  },
  "grants": [
    {"src": ["group:eng"], "models": ["anthropic/claude-*", "openai/*"]},
    {"src": ["alice@example.com"], "models": ["*"], "role": "admin"},
  ],
  "logging": {"database": "logs.db", "retention_days": 7, "bodies": false, "queue_size": 500},
  "prices": "prices.json",
}
)";
  LoadOptions opts;
  opts.file_name = "gw.hujson";
  opts.base_dir = dir.path();
  opts.env = fakeEnv({{"ANTHROPIC_API_KEY", kAnthropicKey}});
  auto r = parseGatewayConfig(text, opts);
  ASSERT_TRUE(r.isOk()) << r.status().message();
  const GatewayConfig& c = r.value();
  EXPECT_EQ(c.hostname, "llm");
  EXPECT_EQ(c.listen, 8080);
  ASSERT_TRUE(c.loopback_listen.has_value());
  EXPECT_EQ(c.loopback_listen->toString(), "127.0.0.1:0");
  ASSERT_TRUE(c.loopback_identity.has_value());
  EXPECT_EQ(c.loopback_identity->user_login, "bench@example.com");
  EXPECT_EQ(c.loopback_identity->groups, std::vector<std::string>{"group:eng"});
  ASSERT_EQ(c.providers.size(), 3u);
  const ProviderConfig& a = c.providers[0];
  EXPECT_EQ(a.id, "anthropic");
  EXPECT_EQ(a.kind, ProviderKind::kAnthropic);
  EXPECT_EQ(a.base_url, "https://api.anthropic.com");  // the kind's default
  EXPECT_EQ(a.url.host, "api.anthropic.com");
  EXPECT_EQ(a.url.port, 443);
  EXPECT_TRUE(a.key.equals(kAnthropicKey));
  EXPECT_EQ(a.key_ref, "env:ANTHROPIC_API_KEY");
  EXPECT_EQ(a.headers.size(), 1u);
  EXPECT_EQ(a.pos.line, 9);
  const ProviderConfig& o = *c.provider("openai");
  EXPECT_EQ(o.base_url, "https://api.openai.com");
  EXPECT_TRUE(o.key.equals(kOpenAIKey));  // trailing newline trimmed
  EXPECT_EQ(o.ca_file, dir.path() + "/ca.pem");
  EXPECT_EQ(o.connect_timeout_ms, 2000u);
  EXPECT_EQ(o.read_timeout_ms, 30000u);
  EXPECT_TRUE(o.serves("o3"));
  EXPECT_FALSE(o.serves("o3-mini"));
  const ProviderConfig& v = c.providers[2];
  EXPECT_EQ(v.kind, ProviderKind::kOpenAICompatible);
  EXPECT_TRUE(v.key.empty());
  EXPECT_EQ(v.url.scheme, "http");
  EXPECT_EQ(v.url.port, 8000);
  EXPECT_EQ(v.url.path, "/serve");
  EXPECT_EQ(v.url.target("/v1/chat/completions"), "/serve/v1/chat/completions");
  EXPECT_EQ(v.url.hostHeader(), "127.0.0.1:8000");
  ASSERT_EQ(c.grants.size(), 2u);
  EXPECT_EQ(c.grants[0].origin, "gw.hujson:27:5");
  EXPECT_EQ(c.grants[0].role, Role::kUser);
  EXPECT_EQ(c.grants[1].role, Role::kAdmin);
  EXPECT_EQ(c.logging.database, dir.path() + "/logs.db");
  EXPECT_EQ(c.logging.retention_days, 7u);
  EXPECT_FALSE(c.logging.bodies);
  EXPECT_EQ(c.logging.queue_size, 500u);
  EXPECT_EQ(c.prices, dir.path() + "/prices.json");
}

TEST(GatewayConfig, Defaults) {
  auto r = parseGatewayConfig(kMinimal, syntaxOnly());
  ASSERT_TRUE(r.isOk()) << r.status().message();
  EXPECT_EQ(r->hostname, "ai");
  EXPECT_EQ(r->listen, 80);
  EXPECT_FALSE(r->loopback_listen);
  EXPECT_TRUE(r->grants.empty());  // deny by default
  EXPECT_EQ(r->logging.retention_days, 30u);
  EXPECT_TRUE(r->logging.bodies);
  EXPECT_EQ(r->logging.queue_size, 10000u);
  EXPECT_EQ(r->logging.database, "gateway-logs.db");
  EXPECT_EQ(r->providers[0].connect_timeout_ms, 10000u);
  EXPECT_EQ(r->providers[0].read_timeout_ms, 600000u);
  EXPECT_EQ(r->prices, "");
}

TEST(GatewayConfig, UnknownKindNamesFileLineColumnAndFix) {
  std::string text = R"({
  "providers": {
    "anthropic": {
      "kind": "antropic",
      "key": "env:K",
      "models": ["claude-*"],
    },
  },
})";
  EXPECT_EQ(errorOf(text),
            "gw.hujson:4:15: provider \"anthropic\": unknown kind \"antropic\" "
            "(did you mean \"anthropic\"?); expected one of anthropic, openai, "
            "openai_compatible");
}

TEST(GatewayConfig, UnknownKeysSuggestTheClosestName) {
  std::string text = R"({
  "hostnme": "ai",
  "providers": {"a": {"kind": "anthropic", "apikey": "env:K", "key": "env:K", "models": ["x"],
                      "timeouts": {"conect_ms": 5}}},
  "logging": {"retention": 3},
})";
  EXPECT_EQ(errorOf(text),
            "gw.hujson:2:3: unknown top-level key \"hostnme\" (did you mean \"hostname\"?); "
            "allowed: version, hostname, listen, loopback_listen, loopback_identity, providers, "
            "grants, logging, prices, quotas, guardrails, hooks\n"
            "gw.hujson:3:44: provider \"a\": unknown provider key \"apikey\" (did you mean "
            "\"key\"?); allowed: kind, base_url, local, key, models, headers, ca_file, timeouts\n"
            "gw.hujson:4:36: provider \"a\": unknown timeout \"conect_ms\" (did you mean "
            "\"connect_ms\"?); allowed: connect_ms, read_ms\n"
            "gw.hujson:5:15: unknown logging key \"retention\"; allowed: database, "
            "retention_days, bodies, queue_size, tool_calls");
}

TEST(GatewayConfig, TypesAndRangesAreChecked) {
  std::string text = R"({
  "hostname": "AI box",
  "listen": 70000,
  "providers": {"a": {"kind": "anthropic", "key": "env:K", "models": "claude-*",
                      "local": "yes", "timeouts": {"read_ms": -1}}},
  "logging": {"bodies": 1, "queue_size": 1.5, "retention_days": 0},
})";
  std::string e = errorOf(text);
  EXPECT_NE(e.find("gw.hujson:2:15: hostname must be one DNS label"), std::string::npos) << e;
  EXPECT_NE(e.find("gw.hujson:3:13: listen: \"listen\" must be a whole number from 1 to 65535"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("gw.hujson:4:70: provider \"a\": \"models\" must be a non-empty list"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("gw.hujson:5:32: provider \"a\": \"local\" must be true or false"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("gw.hujson:5:63: provider \"a\": \"read_ms\" must be a whole number from 1"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("gw.hujson:6:25: logging: \"bodies\" must be true or false"), std::string::npos)
      << e;
  EXPECT_NE(e.find("gw.hujson:6:42: logging: \"queue_size\""), std::string::npos) << e;
  EXPECT_NE(e.find("gw.hujson:6:65: logging: \"retention_days\" must be a whole number from 1 "
                   "to 3650"),
            std::string::npos)
      << e;
}

TEST(GatewayConfig, ProviderRequirements) {
  EXPECT_EQ(errorOf("{}"),
            "gw.hujson:1:1: the config has no \"providers\": add at least one, e.g. "
            "\"providers\": {\"anthropic\": {\"kind\": \"anthropic\", \"key\": "
            "\"env:ANTHROPIC_API_KEY\", \"models\": [\"claude-*\"]}}");
  std::string e = errorOf(R"({"providers": {"Open AI": {}}})");
  EXPECT_NE(e.find("1:16: provider \"Open AI\": the id must be lower-case"), std::string::npos)
      << e;
  EXPECT_NE(e.find("1:27: provider \"Open AI\" has no \"kind\""), std::string::npos) << e;
  EXPECT_NE(e.find("1:27: provider \"Open AI\" has no \"key\""), std::string::npos) << e;
  EXPECT_NE(e.find("1:27: provider \"Open AI\" has no \"models\""), std::string::npos) << e;
  EXPECT_NE(errorOf(R"({"providers": {"x": {"kind": "openai_compatible", "key": "env:K",
      "models": ["m"]}}})")
                .find("needs \"base_url\""),
            std::string::npos);
}

TEST(GatewayConfig, BaseUrlRules) {
  auto err = [](const std::string& url, bool local = false) {
    std::string text =
        R"({"providers": {"p": {"kind": "openai", "key": "env:K", "models": ["m"],)" +
        std::string(local ? "\"local\": true, " : "") + "\"base_url\": \"" + url + "\"}}}";
    auto r = parseGatewayConfig(text, syntaxOnly());
    return r.isOk() ? std::string() : r.status().message();
  };
  EXPECT_NE(err("http://10.0.0.5:8000").find("is plain http://: use https://, or set \"local\""),
            std::string::npos);
  EXPECT_EQ(err("http://10.0.0.5:8000", true), "");
  EXPECT_NE(err("https://api.openai.com/v1").find("ends in /v1: drop it"), std::string::npos);
  EXPECT_NE(err("https://api.openai.com/v1/").find("ends in /v1"), std::string::npos);
  EXPECT_NE(err("ftp://x").find("must start with https://"), std::string::npos);
  EXPECT_NE(err("https://user:pw@x").find("must not hold credentials"), std::string::npos);
  EXPECT_NE(err("https://x/a?b=1").find("query or fragment"), std::string::npos);
  EXPECT_NE(err("https://x:0").find("invalid port"), std::string::npos);
  EXPECT_NE(err("https://x:99999").find("invalid port"), std::string::npos);
  EXPECT_NE(err("https://:443").find("has no host"), std::string::npos);
  EXPECT_NE(err("https://[zz]:1").find("malformed IPv6"), std::string::npos);
  EXPECT_NE(err("https://a b").find("invalid character"), std::string::npos);
  EXPECT_EQ(err("https://[::1]:8443/gw"), "");

  auto r = parseGatewayConfig(R"({"providers": {"p": {"kind": "openai", "key": "env:K",
      "models": ["m"], "base_url": "HTTPS://[::1]:8443/gw/"}}})",
                              syntaxOnly());
  ASSERT_TRUE(r.isOk()) << r.status().message();
  const UpstreamUrl& u = r->providers[0].url;
  EXPECT_EQ(u.scheme, "https");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 8443);
  EXPECT_EQ(u.path, "/gw");
  EXPECT_EQ(u.hostHeader(), "[::1]:8443");
  EXPECT_EQ(u.target("/v1/responses?x=1"), "/gw/v1/responses?x=1");
}

TEST(GatewayConfig, ExtraHeadersCannotCarryCredentialsOrFraming) {
  std::string e = errorOf(R"({"providers": {"p": {"kind": "openai", "key": "env:K",
    "models": ["m"], "headers": {"Authorization": "Bearer sk-x", "Host": "x",
    "X-Gatehouse-User": "a", "Transfer-Encoding": "chunked", "bad name": "v", "X-Ok": "a\nb",
    "OpenAI-Project": "proj_1"}}}})");
  EXPECT_NE(e.find("header \"Authorization\" carries a credential"), std::string::npos) << e;
  EXPECT_NE(e.find("header \"Host\" is set by the gateway"), std::string::npos) << e;
  EXPECT_NE(e.find("header \"X-Gatehouse-User\" is set by the gateway"), std::string::npos) << e;
  EXPECT_NE(e.find("header \"Transfer-Encoding\" is set by the gateway"), std::string::npos) << e;
  EXPECT_NE(e.find("\"bad name\" is not a valid header name"), std::string::npos) << e;
  EXPECT_NE(e.find("header \"X-Ok\" must be a string without control"), std::string::npos) << e;
  EXPECT_EQ(e.find("OpenAI-Project"), std::string::npos) << e;
  EXPECT_EQ(e.find("sk-x"), std::string::npos) << e;
}

TEST(GatewayConfig, LoopbackListenerRules) {
  std::string base =
      R"("providers": {"a": {"kind": "anthropic", "key": "env:K", "models": ["m"]}})";
  EXPECT_NE(errorOf("{" + base + R"(, "loopback_listen": "0.0.0.0:80",
     "loopback_identity": {"user": "a@b"}})")
                .find("loopback_listen must be a loopback address"),
            std::string::npos);
  EXPECT_NE(errorOf("{" + base + R"(, "loopback_listen": "127.0.0.1:9"})")
                .find("loopback_listen needs \"loopback_identity\""),
            std::string::npos);
  EXPECT_NE(errorOf("{" + base + R"(, "loopback_identity": {"user": "a@b"}})")
                .find("has no effect without \"loopback_listen\""),
            std::string::npos);
  EXPECT_NE(errorOf("{" + base + R"(, "loopback_listen": "[::1]:9",
     "loopback_identity": {"user": "a@b", "tags": ["tag:x"]}})")
                .find("needs exactly one of \"user\""),
            std::string::npos);
  EXPECT_NE(errorOf("{" + base + R"(, "loopback_listen": "[::1]:9",
     "loopback_identity": {"user": "a@b", "groups": ["eng"]}})")
                .find("\"groups\" entries must look like \"group:NAME\""),
            std::string::npos);
  auto r = parseGatewayConfig("{" + base + R"(, "loopback_listen": "[::1]:9",
     "loopback_identity": {"tags": ["tag:bench"]}})",
                              syntaxOnly());
  ASSERT_TRUE(r.isOk()) << r.status().message();
  EXPECT_EQ(r->loopback_identity->tags, std::vector<std::string>{"tag:bench"});
  EXPECT_EQ(r->loopback_identity->name, "loopback");
}

TEST(GatewayConfig, GrantValidation) {
  std::string text = R"({
  "providers": {"anthropic": {"kind": "anthropic", "key": "env:K", "models": ["claude-*"]}},
  "grants": [
    {"src": ["group:eng"], "models": ["antropic/claude-*"]},
    {"src": ["bob", "group:"], "models": ["claude-*"], "role": "owner"},
    {"models": ["*"]},
    {"src": [], "models": [], "dst": ["tag:ai"]},
    {"src": ["*"]},
    "everyone",
  ],
})";
  std::string e = errorOf(text);
  EXPECT_NE(e.find("gw.hujson:4:39: model pattern \"antropic/claude-*\" names unknown provider "
                   "\"antropic\" (did you mean \"anthropic\"?); providers: anthropic"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("gw.hujson:5:14: src \"bob\" is not a caller"), std::string::npos) << e;
  EXPECT_NE(e.find("gw.hujson:5:21: src \"group:\": the name after ':'"), std::string::npos) << e;
  EXPECT_NE(e.find("gw.hujson:5:43: model pattern \"claude-*\" must name the provider: write "
                   "\"PROVIDER/MODEL\", e.g. \"anthropic/claude-*\""),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("gw.hujson:5:64: role must be \"user\" or \"admin\""), std::string::npos) << e;
  EXPECT_NE(e.find("gw.hujson:6:5: grant has no \"src\""), std::string::npos) << e;
  EXPECT_NE(e.find("gw.hujson:7:13: \"src\" is empty"), std::string::npos) << e;
  EXPECT_NE(e.find("gw.hujson:7:27: \"models\" is empty and the role is user"), std::string::npos)
      << e;
  EXPECT_NE(e.find("gw.hujson:7:31: unknown grant key \"dst\""), std::string::npos) << e;
  EXPECT_NE(e.find("gw.hujson:8:5: grant has no \"models\" and the role is user"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("gw.hujson:9:5: a grant must be an object"), std::string::npos) << e;
}

TEST(GatewayConfig, HuJsonSyntaxErrorsKeepThePosition) {
  EXPECT_EQ(errorOf("{\n  \"providers\": {,}\n}"),
            "gw.hujson:2:17: invalid JSON: syntax error while parsing object key - unexpected "
            "','; expected string literal");
  EXPECT_EQ(errorOf("{\"hostname\": \"a\", \"hostname\": \"b\"}"),
            "gw.hujson:1:19: duplicate key \"hostname\": merge the two entries into one");
  EXPECT_EQ(errorOf("[]"),
            "gw.hujson:1:1: the gateway config must be a JSON object, e.g. "
            "{\"providers\": {...}}");
  EXPECT_NE(errorOf(std::string(kMinimal).insert(1, "\"version\": 2, "))
                .find("unsupported version: this gateway reads version 1"),
            std::string::npos);
}

TEST(GatewayConfig, EnvKeys) {
  LoadOptions opts;
  opts.file_name = "gw.hujson";
  opts.env = fakeEnv({});
  EXPECT_EQ(errorOf(kMinimal, opts),
            "gw.hujson:2:10: provider \"anthropic\": key env:ANTHROPIC_API_KEY: environment "
            "variable ANTHROPIC_API_KEY is not set: export it before starting the gateway, or "
            "use \"file:PATH\"");
  opts.env = fakeEnv({{"ANTHROPIC_API_KEY", "  \n"}});
  EXPECT_NE(errorOf(kMinimal, opts).find("environment variable ANTHROPIC_API_KEY is empty"),
            std::string::npos);
  opts.env = fakeEnv({{"ANTHROPIC_API_KEY", "abc\ndef"}});
  EXPECT_NE(errorOf(kMinimal, opts).find("control characters"), std::string::npos);
  opts.env = fakeEnv({{"ANTHROPIC_API_KEY", std::string(" ") + kAnthropicKey + "\n"}});
  auto r = parseGatewayConfig(kMinimal, opts);
  ASSERT_TRUE(r.isOk()) << r.status().message();
  EXPECT_TRUE(r->providers[0].key.equals(kAnthropicKey));

  std::string bad = R"({"providers": {"a": {"kind": "anthropic", "models": ["m"],
    "key": "env:1BAD"}}})";
  EXPECT_NE(errorOf(bad).find("\"env:1BAD\" is not a valid environment variable name"),
            std::string::npos);
}

TEST(GatewayConfig, PastedKeyIsRejectedWithoutEchoingIt) {
  std::string text = R"({"providers": {"a": {"kind": "anthropic", "models": ["m"],
    "key": ")" + std::string(kAnthropicKey) +
                     "\"}}}";
  std::string e = errorOf(text);
  EXPECT_NE(e.find("gw.hujson:2:12: provider \"a\": \"key\" must be \"env:NAME\" or "
                   "\"file:PATH\" (the key itself never goes in the config)"),
            std::string::npos)
      << e;
  EXPECT_EQ(e.find(kAnthropicKey), std::string::npos) << e;
}

TEST(GatewayConfig, FileKeysMustBePrivate) {
  TempDir dir;
  std::string loose = dir.write("loose.key", kOpenAIKey, 0644);
  dir.write("empty.key", "\n", 0600);
  ::mkdir((dir.path() + "/adir").c_str(), 0700);
  auto text = [&](const std::string& ref) {
    return R"({"providers": {"o": {"kind": "openai", "models": ["m"], "key": ")" + ref + "\"}}}";
  };
  LoadOptions opts;
  opts.file_name = "gw.hujson";
  opts.base_dir = dir.path();
  EXPECT_EQ(errorOf(text("file:loose.key"), opts),
            "gw.hujson:1:64: provider \"o\": key file:loose.key: " + loose +
                " has mode 0644 and is readable by group or others: run chmod 600 " + loose);
  EXPECT_NE(errorOf(text("file:missing.key"), opts).find("No such file or directory; create it"),
            std::string::npos);
  EXPECT_NE(errorOf(text("file:empty.key"), opts).find("is empty: put the key in it"),
            std::string::npos);
  EXPECT_NE(errorOf(text("file:adir"), opts).find("is not a regular file"), std::string::npos);
  EXPECT_NE(errorOf(text("file:"), opts).find("\"file:\" needs a path"), std::string::npos);
  ::chmod(loose.c_str(), 0600);
  auto r = parseGatewayConfig(text("file:" + loose), opts);  // absolute path
  ASSERT_TRUE(r.isOk()) << r.status().message();
  EXPECT_TRUE(r->providers[0].key.equals(kOpenAIKey));
}

TEST(GatewayConfig, NamedFilesMustExist) {
  TempDir dir;
  LoadOptions opts;
  opts.file_name = "gw.hujson";
  opts.base_dir = dir.path();
  opts.env = fakeEnv({{"K", "k-123456"}});
  std::string e = errorOf(R"({"providers": {"a": {"kind": "anthropic", "key": "env:K",
      "models": ["m"], "ca_file": "nope.pem"}},
    "logging": {"database": "no/such/dir/logs.db"}, "prices": "prices.json"})",
                          opts);
  EXPECT_NE(
      e.find("gw.hujson:2:35: provider \"a\": ca_file: cannot open " + dir.path() + "/nope.pem"),
      std::string::npos)
      << e;
  EXPECT_NE(e.find("gw.hujson:3:29: logging: the directory " + dir.path() +
                   "/no/such/dir of the database does not exist"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("gw.hujson:3:63: prices: cannot open"), std::string::npos) << e;
}

TEST(GatewayConfig, LoadFromFileResolvesRelativeToTheFile) {
  TempDir dir;
  dir.write("a.key", kAnthropicKey);
  std::string path = dir.write("gateway.hujson", R"({"providers": {"anthropic": {
    "kind": "anthropic", "key": "file:a.key", "models": ["claude-*"]}}})");
  auto r = loadGatewayConfig(path);
  ASSERT_TRUE(r.isOk()) << r.status().message();
  EXPECT_EQ(r->file, path);
  EXPECT_TRUE(r->providers[0].key.equals(kAnthropicKey));
  EXPECT_EQ(r->logging.database, dir.path() + "/gateway-logs.db");

  auto missing = loadGatewayConfig(dir.path() + "/nope.hujson");
  ASSERT_FALSE(missing.isOk());
  EXPECT_EQ(missing.status().code(), ENOENT);
  EXPECT_NE(missing.status().message().find("cannot read the gateway config"), std::string::npos);

  std::string broken =
      dir.write("broken.hujson", "{\n  \"providers\": {\"a\": {\"kind\": \"x\"}}\n}");
  auto b = loadGatewayConfig(broken);
  ASSERT_FALSE(b.isOk());
  EXPECT_EQ(b.status().message().rfind(broken + ":2:", 0), 0u) << b.status().message();
}

TEST(GatewayConfig, RedactReplacesEveryKey) {
  LoadOptions opts = syntaxOnly();
  opts.resolve_files = true;
  opts.env = fakeEnv({{"ANTHROPIC_API_KEY", kAnthropicKey}});
  auto r = parseGatewayConfig(kMinimal, opts);
  ASSERT_TRUE(r.isOk()) << r.status().message();
  std::string text = std::string("upstream said: bad key ") + kAnthropicKey + " / " + kAnthropicKey;
  EXPECT_EQ(r->redact(text), "upstream said: bad key [redacted] / [redacted]");
  GatewayConfig odd;
  odd.providers.resize(1);
  odd.providers[0].key = Secret("dact");  // occurs inside the mark itself
  EXPECT_EQ(odd.redact("a dact b"), "a [redacted] b");
}

// The example in CONFIG.md is the one operators copy: it must load.
TEST(GatewayConfig, SpecExampleLoads) {
  std::ifstream in(std::string(GATEHOUSE_SOURCE_DIR) + "/proxy/config/CONFIG.md");
  std::stringstream md;
  md << in.rdbuf();
  std::string text = md.str();
  size_t heading = text.find("## Example");
  ASSERT_NE(heading, std::string::npos);
  size_t start = text.find("```jsonc\n", heading);
  ASSERT_NE(start, std::string::npos);
  start += 9;
  size_t end = text.find("```", start);
  auto r = parseGatewayConfig(text.substr(start, end - start), syntaxOnly());
  ASSERT_TRUE(r.isOk()) << r.status().message();
  EXPECT_EQ(r->providers.size(), 3u);
  EXPECT_EQ(r->providers[2].id, "vllm");
  EXPECT_EQ(r->grants.size(), 4u);
}

TEST(GlobMatch, Patterns) {
  EXPECT_TRUE(globMatch("claude-*", "claude-sonnet-4-5"));
  EXPECT_TRUE(globMatch("claude-*", "claude-"));
  EXPECT_FALSE(globMatch("claude-*", "claude"));
  EXPECT_TRUE(globMatch("*", ""));
  EXPECT_TRUE(globMatch("anthropic/*", "anthropic/claude-x"));
  EXPECT_FALSE(globMatch("anthropic/*", "anthropic-eu/claude-x"));
  EXPECT_TRUE(globMatch("*/gpt-4o", "openai/gpt-4o"));
  EXPECT_TRUE(globMatch("a*b*c", "aXXbYYbZc"));
  EXPECT_FALSE(globMatch("a*b*c", "aXXbYY"));
  EXPECT_TRUE(globMatch("openrouter/*", "openrouter/meta-llama/llama-3"));
  EXPECT_TRUE(globMatch("o3", "o3"));
  EXPECT_FALSE(globMatch("o3", "o3-mini"));
  EXPECT_TRUE(globMatch("**", "x/y"));
}

TEST(Secret, NeverPrintsAndWipes) {
  Secret s("sk-live-123");
  std::ostringstream os;
  os << s;
  EXPECT_EQ(os.str(), "[secret]");
  EXPECT_EQ(s.toString(), "[secret]");
  EXPECT_EQ(s.reveal(), "sk-live-123");
  Secret copy = s;
  EXPECT_TRUE(copy.equals("sk-live-123"));
  EXPECT_FALSE(copy.equals("sk-live-124"));
  EXPECT_FALSE(copy.equals("sk-live-12"));
  Secret moved = std::move(copy);
  EXPECT_TRUE(copy.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  EXPECT_EQ(moved.size(), 11u);
  moved = Secret();
  EXPECT_TRUE(moved.empty());
  EXPECT_TRUE(Secret().equals(""));
}

TEST(Credentials, InjectedHeaderPerKind) {
  ProviderConfig p;
  p.kind = ProviderKind::kAnthropic;
  p.key = Secret("sk-ant-1");
  auto c = upstreamCredential(p);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->name, "x-api-key");
  EXPECT_EQ(c->value.reveal(), "sk-ant-1");
  p.kind = ProviderKind::kOpenAICompatible;
  c = upstreamCredential(p);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->name, "authorization");
  EXPECT_EQ(c->value.reveal(), "Bearer sk-ant-1");
  p.key = Secret();
  EXPECT_FALSE(upstreamCredential(p));
  EXPECT_EQ(credentialHeaderName(ProviderKind::kOpenAI), "authorization");
}

TEST(Credentials, StrippedInboundHeaders) {
  for (const char* h : {"Authorization", "x-api-key", "X-Api-Key", "api-key", "x-goog-api-key",
                        "Proxy-Authorization", "X-Amz-Date", "x-amz-security-token"}) {
    EXPECT_TRUE(isCredentialHeader(h)) << h;
    EXPECT_TRUE(isStrippedInbound(h)) << h;
  }
  for (const char* h : {"X-Gatehouse-User", "x-gatehouse-", "Tailscale-User-Login",
                        "x-tailscale-user", "X-Forwarded-User", "x-remote-user"}) {
    EXPECT_TRUE(isIdentityHeader(h)) << h;
    EXPECT_TRUE(isStrippedInbound(h)) << h;
  }
  for (const char* h : {"anthropic-version", "anthropic-beta", "OpenAI-Beta", "content-type",
                        "x-apikey", "authorization2", "user-agent", "x-gatehouse"}) {
    EXPECT_FALSE(isStrippedInbound(h)) << h;
  }
  EXPECT_TRUE(isHopByHopHeader("Transfer-Encoding"));
  EXPECT_TRUE(isHopByHopHeader("connection"));
  EXPECT_FALSE(isHopByHopHeader("content-length"));  // byte-exact bodies keep their length
  EXPECT_TRUE(validHeaderName("OpenAI-Beta"));
  EXPECT_FALSE(validHeaderName("a b"));
  EXPECT_FALSE(validHeaderName(""));
  EXPECT_TRUE(validHeaderValue("Bearer abc\tdef"));
  EXPECT_FALSE(validHeaderValue("abc\r\nX-Evil: 1"));
}

}  // namespace
}  // namespace gatehouse::proxy
