// Webhook signatures, Standard Webhooks scheme (https://www.standardwebhooks.com):
//
//   webhook-id:        the event's idempotency id ("evt_…")
//   webhook-timestamp: Unix seconds of the delivery attempt
//   webhook-signature: "v1," + base64(HMAC-SHA256(key, id + "." + timestamp + "." + body))
//
// The key is the configured secret's bytes; a secret of the form "whsec_<base64>" (what Standard
// Webhooks libraries generate) is base64-decoded first, so their verifiers accept our signatures.
//
// Thread safety: pure functions (BoringSSL HMAC).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace gatehouse::proxy {

// The HMAC key for `secret` (see above). The result holds secret bytes: wipe it after use.
std::string webhookSigningKey(std::string_view secret);

// "v1,<base64 signature>".
std::string webhookSignature(std::string_view secret, std::string_view id, int64_t timestamp_s,
                             std::string_view body);

// Lower-case hex of SHA-256(`data`), cut to `hex_digits`.
std::string sha256Hex(std::string_view data, size_t hex_digits = 64);

}  // namespace gatehouse::proxy
