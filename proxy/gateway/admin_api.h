// The gateway's admin API (role admin, checked by the caller), JSON over the same listener:
//   GET /api/requests?user=&tag=&model=&status=&session=&since=&until=&limit=&cursor=
//   GET /api/requests/{id}          the whole record with headers and bodies
//   GET /api/usage?group_by=user|tag|model|day|user_agent&user=&tag=&model=&since=&until=
//   GET /api/sessions?user=&since=&until=&limit=&offset=
//   GET /api/tools?type=&name=&user=&tag=&session=&command=&guardrail=&since=&until=&limit=
//                 &cursor=&offset=
//                                   tool calls, newest first (command: a word prefix of one of
//                                   the call's parsed commands, e.g. "git rev-parse")
//   GET /api/tools/stats?user=&tag=&type=&since=&until=   calls by type per user and UTC day
// Times are Unix milliseconds. Answers are synchronous reads of the log database (a LogReader,
// WAL: they never block the writer).
#pragma once

#include <string>
#include <string_view>

#include "proxy/logstore/log_query.h"

namespace gatehouse::proxy {

struct AdminResponse {
  int status = 200;
  std::string body;
};

AdminResponse handleAdminRequest(LogReader* reader, std::string_view method,
                                 std::string_view target);

}  // namespace gatehouse::proxy
