// MemoryQuotaStore: the ledger behind the QuotaStore interface, answering synchronously.
#include "proxy/quota/store.h"

namespace gatehouse::proxy {

void MemoryQuotaStore::reserve(const QuotaPlan& plan, int64_t now_ms, ReserveDone done) {
  done(ledger_.reserve(plan, now_ms));
}

void MemoryQuotaStore::settle(const QuotaPlan& plan, const QuotaTaken& taken,
                              const QuotaAmounts& real, int64_t now_ms) {
  ledger_.settle(plan, taken, real, now_ms);
}

void MemoryQuotaStore::refill(const std::string& key, const BucketSpec& spec, int64_t amount,
                              int64_t now_ms, StatusDone done) {
  ledger_.refill(key, spec, amount, now_ms);
  done(Status::ok());
}

void MemoryQuotaStore::setCapacity(const std::string& key, const BucketSpec& spec, int64_t capacity,
                                   int64_t now_ms, StatusDone done) {
  ledger_.setCapacity(key, spec, capacity, now_ms);
  done(Status::ok());
}

Result<std::unique_ptr<QuotaStore>> openQuotaStore(uv_loop_t* loop,
                                                   const QuotaStoreConfig& config) {
  switch (config.kind) {
    case QuotaStoreConfig::Kind::kMemory:
      return std::unique_ptr<QuotaStore>(std::make_unique<MemoryQuotaStore>());
    case QuotaStoreConfig::Kind::kRedis:
      return openRedisQuotaStore(loop, config);
    default:
      return openSqliteQuotaStore(config.database);
  }
}

void MemoryQuotaStore::list(ListDone done) {
  std::vector<BucketRow> rows;
  for (const auto& [key, e] : ledger_.entries()) rows.push_back({key, e.spec, e.state});
  done(std::move(rows));
}

}  // namespace gatehouse::proxy
