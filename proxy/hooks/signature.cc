// Webhook signatures. See signature.h.
#include "proxy/hooks/signature.h"

#include <openssl/base64.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>
#include <openssl/sha.h>

#include <algorithm>

#include "proxy/logstore/log_db.h"

namespace gatehouse::proxy {

std::string webhookSigningKey(std::string_view secret) {
  constexpr std::string_view kPrefix = "whsec_";
  if (secret.substr(0, kPrefix.size()) == kPrefix) {
    std::string_view b64 = secret.substr(kPrefix.size());
    size_t max = 0;
    if (EVP_DecodedLength(&max, b64.size())) {
      std::string key(max, '\0');
      size_t n = 0;
      if (EVP_DecodeBase64(reinterpret_cast<uint8_t*>(key.data()), &n, max,
                           reinterpret_cast<const uint8_t*>(b64.data()), b64.size())) {
        key.resize(n);
        return key;
      }
      OPENSSL_cleanse(key.data(), key.size());
    }
  }
  return std::string(secret);
}

std::string webhookSignature(std::string_view secret, std::string_view id, int64_t timestamp_s,
                             std::string_view body) {
  std::string key = webhookSigningKey(secret);
  std::string ts = std::to_string(timestamp_s);
  uint8_t mac[EVP_MAX_MD_SIZE];
  unsigned mac_len = 0;
  HMAC_CTX ctx;
  HMAC_CTX_init(&ctx);
  HMAC_Init_ex(&ctx, key.data(), key.size(), EVP_sha256(), nullptr);
  HMAC_Update(&ctx, reinterpret_cast<const uint8_t*>(id.data()), id.size());
  HMAC_Update(&ctx, reinterpret_cast<const uint8_t*>("."), 1);
  HMAC_Update(&ctx, reinterpret_cast<const uint8_t*>(ts.data()), ts.size());
  HMAC_Update(&ctx, reinterpret_cast<const uint8_t*>("."), 1);
  HMAC_Update(&ctx, reinterpret_cast<const uint8_t*>(body.data()), body.size());
  HMAC_Final(&ctx, mac, &mac_len);
  HMAC_CTX_cleanup(&ctx);
  OPENSSL_cleanse(key.data(), key.size());
  return "v1," +
         logstore::base64Encode(std::string_view(reinterpret_cast<const char*>(mac), mac_len));
}

std::string sha256Hex(std::string_view data, size_t hex_digits) {
  uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const uint8_t*>(data.data()), data.size(), digest);
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : digest) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  out.resize(std::min(hex_digits, out.size()));
  return out;
}

}  // namespace gatehouse::proxy
