#include "proxy/quota/bucket.h"

#include <cerrno>
#include <limits>
#include <utility>

#include "proxy/usage/pricing.h"

namespace gatehouse::proxy {
namespace {

constexpr std::string_view kAmountForm =
    "expected \"$5.00\", \"2M tokens\" or \"500 requests\" (suffixes k, M, B allowed for tokens "
    "and requests)";
constexpr std::string_view kRateForm =
    "expected AMOUNT/PERIOD such as \"$5.00/day\", \"2M tokens/day\" or \"500 requests/hour\" "
    "(PERIOD: minute, hour, day, week, month = 30 days)";

std::string_view trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

Status bad(std::string_view text, std::string why, std::string_view form) {
  return Status(EINVAL, "\"" + std::string(text) + "\": " + why + "; " + std::string(form));
}

}  // namespace

std::string_view quotaUnitName(QuotaUnit unit) {
  switch (unit) {
    case QuotaUnit::kNanodollars:
      return "dollars";
    case QuotaUnit::kTokens:
      return "tokens";
    default:
      return "requests";
  }
}

std::string_view onExceedName(OnExceed e) {
  switch (e) {
    case OnExceed::kReject:
      return "reject";
    case OnExceed::kOverdraft:
      return "overdraft";
    default:
      return "flag";
  }
}

Result<QuotaAmount> parseQuotaAmount(std::string_view text) {
  std::string_view s = trim(text);
  QuotaAmount out;
  std::string why;
  if (!s.empty() && s.front() == '$') {
    auto v = parseScaledDecimal(s.substr(1), &why);
    if (!v) return bad(text, why, kAmountForm);
    out.unit = QuotaUnit::kNanodollars;
    out.value = *v;
  } else {
    size_t space = s.find(' ');
    if (space == std::string_view::npos) return bad(text, "no unit", kAmountForm);
    std::string_view number = s.substr(0, space);
    std::string_view unit = trim(s.substr(space));
    if (unit == "tokens" || unit == "token") {
      out.unit = QuotaUnit::kTokens;
    } else if (unit == "requests" || unit == "request") {
      out.unit = QuotaUnit::kRequests;
    } else {
      return bad(text, "unknown unit \"" + std::string(unit) + "\"", kAmountForm);
    }
    int64_t mult = 1;
    if (!number.empty()) {
      switch (number.back()) {
        case 'k':
        case 'K':
          mult = 1'000;
          break;
        case 'M':
          mult = 1'000'000;
          break;
        case 'B':
        case 'G':
          mult = 1'000'000'000;
          break;
        default:
          break;
      }
      if (mult != 1) number.remove_suffix(1);
    }
    auto v = parseScaledDecimal(number, &why);
    if (!v) return bad(text, why, kAmountForm);
    // v is number × 1e9; the count is v × mult / 1e9 and must be whole.
    __int128 scaled = static_cast<__int128>(*v) * mult;
    if (scaled % kScale != 0) return bad(text, "not a whole number of units", kAmountForm);
    scaled /= kScale;
    if (scaled > kMaxQuotaAmount) return bad(text, "too large", kAmountForm);
    out.value = static_cast<int64_t>(scaled);
  }
  if (out.value > kMaxQuotaAmount) return bad(text, "too large", kAmountForm);
  return out;
}

Result<QuotaRate> parseQuotaRate(std::string_view text) {
  std::string_view s = trim(text);
  size_t slash = s.rfind('/');
  if (slash == std::string_view::npos) return bad(text, "no period", kRateForm);
  std::string_view period = trim(s.substr(slash + 1));
  QuotaRate out;
  constexpr int64_t kMinute = 60'000;
  if (period == "minute" || period == "min") {
    out.period_ms = kMinute;
  } else if (period == "hour" || period == "h") {
    out.period_ms = 60 * kMinute;
  } else if (period == "day" || period == "d") {
    out.period_ms = 24 * 60 * kMinute;
  } else if (period == "week") {
    out.period_ms = 7 * 24 * 60 * kMinute;
  } else if (period == "month") {
    out.period_ms = 30 * 24 * 60 * kMinute;
  } else {
    return bad(text, "unknown period \"" + std::string(period) + "\"", kRateForm);
  }
  auto amount = parseQuotaAmount(s.substr(0, slash));
  if (!amount) {
    const std::string& m = amount.status().message();
    return bad(text, "the amount " + m.substr(0, m.find(';')), kRateForm);
  }
  if (amount->value == 0) return bad(text, "a rate of zero never refills", kRateForm);
  out.amount = *amount;
  return out;
}

std::string formatQuotaAmount(QuotaUnit unit, int64_t value) {
  if (unit == QuotaUnit::kNanodollars) {
    return value < 0 ? "-" + formatUsd(-value) : formatUsd(value);
  }
  return std::to_string(value) + " " + std::string(quotaUnitName(unit));
}

std::string formatQuotaRate(const BucketSpec& s) {
  static const std::pair<int64_t, const char*> kPeriods[] = {{60'000, "minute"},
                                                             {3'600'000, "hour"},
                                                             {86'400'000, "day"},
                                                             {604'800'000, "week"},
                                                             {2'592'000'000, "month"}};
  std::string per = std::to_string(s.refill_period_ms) + " ms";
  for (const auto& [ms, name] : kPeriods) {
    if (ms == s.refill_period_ms) per = name;
  }
  return formatQuotaAmount(s.unit, s.refill_amount) + "/" + per;
}

int64_t mulAddDiv(int64_t a, int64_t b, int64_t c, int64_t d, int64_t* rem) {
  __int128 n = static_cast<__int128>(a) * b + c;
  __int128 q = n / d;
  if (rem) *rem = static_cast<int64_t>(n % d);
  if (q > std::numeric_limits<int64_t>::max()) return std::numeric_limits<int64_t>::max();
  return static_cast<int64_t>(q);
}

BucketState freshBucket(const BucketSpec& spec, int64_t now_ms) {
  BucketState st;
  st.level = spec.capacity;
  st.updated_ms = now_ms;
  return st;
}

void refillBucket(const BucketSpec& spec, BucketState& st, int64_t now_ms) {
  if (now_ms <= st.updated_ms) return;
  int64_t elapsed = now_ms - st.updated_ms;
  st.updated_ms = now_ms;
  int64_t cap = effectiveCapacity(spec, st);
  if (spec.refill_amount <= 0 || spec.refill_period_ms <= 0) return;
  if (st.level >= cap && st.debt == 0) {
    st.refill_rem = 0;
    return;
  }
  int64_t rem = 0;
  int64_t add = mulAddDiv(elapsed, spec.refill_amount, st.refill_rem, spec.refill_period_ms, &rem);
  if (st.debt > 0) {
    add = payDebt(st, add);
    if (st.debt > 0) {
      st.refill_rem = rem;
      return;
    }
  }
  if (st.level >= cap) {
    st.refill_rem = 0;
  } else if (add >= cap - st.level) {
    st.level = cap;
    st.refill_rem = 0;
  } else {
    st.level += add;
    st.refill_rem = rem;
  }
}

std::optional<int64_t> secondsUntil(const BucketSpec& spec, const BucketState& st, int64_t need) {
  __int128 missing = static_cast<__int128>(need) - st.level + st.debt;
  if (missing <= 0) return 0;
  if (spec.refill_amount <= 0 || need > effectiveCapacity(spec, st)) return std::nullopt;
  // Smallest t with floor((t × amount + rem) / period) ≥ need − level + debt.
  __int128 want = missing * spec.refill_period_ms - st.refill_rem;
  __int128 ms = (want + spec.refill_amount - 1) / spec.refill_amount;
  __int128 s = (ms + 999) / 1000;
  return static_cast<int64_t>(s < 1 ? 1 : s);
}

}  // namespace gatehouse::proxy
