// Fuzz target: quota bucket specs ("$5.00/day", "2M tokens/day") and the "quotas" config section
// on arbitrary bytes; whatever parses is round-tripped through the arithmetic (refill, reserve,
// settle on a ledger) with values derived from the input. A crash, a sanitizer report (signed
// overflow included), an empty error message or a bucket whose level leaves [-amount, capacity]
// without an overdraft is a bug.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/config/gateway_config.h"
#include "proxy/quota/bucket.h"
#include "proxy/quota/ledger.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gatehouse::proxy;
  std::string_view text(reinterpret_cast<const char*>(data), size);

  auto amount = parseQuotaAmount(text);
  if (!amount.isOk() && amount.status().message().empty()) __builtin_trap();
  auto rate = parseQuotaRate(text);
  if (!rate.isOk()) {
    if (rate.status().message().find("expected") == std::string::npos) __builtin_trap();
  } else {
    BucketSpec s;
    s.name = "fuzz";
    s.unit = rate->amount.unit;
    s.capacity = rate->amount.value;
    s.refill_amount = rate->amount.value;
    s.refill_period_ms = rate->period_ms;
    if (s.capacity <= 0 || s.capacity > kMaxQuotaAmount) __builtin_trap();
    QuotaLedger l;
    QuotaPlan plan;
    plan.charges.push_back({{{"fuzz", &s}}, 0});
    int64_t now = 0;
    for (size_t i = 0; i < size && i < 64; ++i) {
      now += int64_t{data[i]} * 1'000'003;
      plan.charges[0].amount = (s.capacity / 255) * data[size - 1 - i];
      ReserveOutcome r = l.reserve(plan, now);
      if (r.allowed) {
        QuotaAmounts real{int64_t{data[i]} * (s.capacity / 200), int64_t{data[i]}, 1};
        l.settle(plan, r.taken, real, now);
      }
      const BucketState& st = l.at("fuzz", s, now);
      // A single bucket (no overdraft) never goes below zero; a debt means an empty level.
      if (st.level > s.capacity || st.level < 0 || st.debt < 0 || (st.debt > 0 && st.level != 0) ||
          st.refill_rem < 0 || st.refill_rem >= s.refill_period_ms) {
        __builtin_trap();
      }
    }
  }

  // The section as a config file.
  LoadOptions opts;
  opts.file_name = "fuzz.hujson";
  opts.resolve_files = false;
  std::string cfg_text = "{\"quotas\": " + std::string(text) + "}";
  auto cfg = parseGatewayConfig(cfg_text, opts);
  if (!cfg.isOk() && cfg.status().message().empty()) __builtin_trap();
  return 0;
}
