// Exchange ↔ the pre_request hook (HOOKS.md "pre_request"; config in CONFIG.md "Hooks").
//
// Ordering: after the grant check (the Connection made this Exchange only for an allowed call)
// and before the quota reservation, so a blocked call never reserves quota or holds a
// concurrency slot, and a modified body is what quotas estimate and the upstream receives.
// The call is asynchronous on the gateway loop (HttpCall over the gateway's UpstreamPool); if the
// client goes away meanwhile, clientGone() drops the call.
//
// Outcomes (counted in GatewayCounters, recorded in RequestRecord::hook):
//   allow  → forward as is               block  → 403 permission error in the client's shape
//   modify → forward the hook's body      (Content-Length recomputed by forward()); the model
//            must stay the same: a different model would bypass routing and the grant check
//   failure (connect error, timeout, non-2xx, unparsable answer) → fail_closed: 503 in the
//            client's shape; fail_open: forward the original body and log a line
#include <cstdio>

#include "proxy/gateway/connection.h"
#include "proxy/gateway/records.h"
#include "proxy/hooks/hook_payload.h"

namespace gatehouse::proxy {

void Exchange::start() {
  const auto& hook = shared_.config->hooks.pre_request;
  if (!hook) return forward();
  PreRequestInfo info;
  info.request_id = request_id_;
  if (client_.identity()) {
    const wg::Identity& id = *client_.identity();
    info.caller = recordIdentity(id);
  }
  info.provider = provider_->id;
  info.api = apiKindName(route_.kind);
  info.model = model_.model;
  info.path = head_.target;
  hook_call_ = HttpCall::post(gw_.loop(), gw_.pool(), hook->endpoint, hook->headers,
                              preRequestPayload(info, body_, hook->full_body), hook->timeout_ms,
                              kMaxHookAnswerBytes,
                              [this](Result<HttpReply> r) { onHookAnswer(std::move(r)); });
}

void Exchange::onHookAnswer(Result<HttpReply> reply) {
  auto call = std::move(hook_call_);  // freed when this returns (HttpCall allows it)
  if (done_) return;
  if (!reply) return hookFailed(reply.status().message());
  if (reply->status < 200 || reply->status > 299) {
    return hookFailed("answered HTTP " + std::to_string(reply->status));
  }
  auto answer = parseHookAnswer(reply->body);
  if (!answer) return hookFailed(answer.status().message());
  GatewayCounters& counters = gw_.mutableCounters();
  switch (answer->action) {
    case HookAnswer::Action::kAllow:
      ++counters.hook_allowed;
      hook_outcome_ = "allow";
      return forward();
    case HookAnswer::Action::kBlock: {
      ++counters.hook_blocked;
      hook_outcome_ = "block";
      std::string why = answer->message.empty() ? "no reason given" : answer->message;
      return hookRefuse(GatewayError::permission("blocked by the pre_request hook: " + why));
    }
    case HookAnswer::Action::kModify: {
      ModelRequest changed;
      if (auto err = parseModelRequest(answer->body, &changed)) {
        return hookFailed("modify: the replacement body is not a valid request: " + err->message);
      }
      if (changed.model != model_.model) {
        return hookFailed("modify: the replacement body changes the model from \"" + model_.model +
                          "\" to \"" + changed.model +
                          "\" (not allowed: it would bypass routing and grants)");
      }
      ++counters.hook_modified;
      hook_outcome_ = "modify";
      body_ = std::move(answer->body);
      model_ = std::move(changed);
      return forward();
    }
  }
}

void Exchange::hookFailed(const std::string& why) {
  GatewayCounters& counters = gw_.mutableCounters();
  ++counters.hook_failed;
  const PreRequestHookConfig& hook = *shared_.config->hooks.pre_request;
  std::string what = "pre_request hook " + hook.endpoint.url + ": " + why;
  if (hook.fail_open) {
    ++counters.hook_fail_open;
    hook_outcome_ = "fail_open: " + why;
    std::fprintf(stderr, "gateway: request %s: %s (fail_open: forwarded)\n", request_id_.c_str(),
                 what.c_str());
    return forward();
  }
  hook_outcome_ = "fail_closed: " + why;
  GatewayError e = GatewayError::internal(what + " (fail_closed)");
  e.status = 503;
  e.type = ErrorType::kOverloaded;
  hookRefuse(e);
}

void Exchange::hookRefuse(const GatewayError& error) {
  status_ = error.status;
  record(error.message);
  refuse(error);
}

}  // namespace gatehouse::proxy
