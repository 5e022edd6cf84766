// ergon/logging.h — how Ergon's log lines look.
//
// Ergon logs through spdlog's default logger (an application that sets its own default logger
// gets Ergon's lines there). Every line about a job names it: "job <id> (<type>, attempt N):
// ...". configure_logging() sets the default logger's level and format; in the JSON format
// each line is one JSON object with the job's id, type and attempt (and, where the worker
// knows it, queue) as fields of their own:
//   {"time":"2026-11-29T02:10:00.123456Z","level":"warning","logger":"ergon","thread":1234,
//    "msg":"job 0193... (send_email, attempt 2): failed, retry at 2026-11-29T02:10:07Z: ...",
//    "job_id":"0193...","job_type":"send_email","attempt":2,"queue":"mail"}
// A worker logs, at the default level (info), a retry at warning ("failed, retry at <instant>:
// <error>"), a failure for good at error ("failed for good: <error>"), a refused outcome, a
// timeout's stop and the orphans it rescues at warning; a start or completion only at debug.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ergon {

enum class LogFormat { kText, kJson };

struct LogOptions {
  LogFormat format = LogFormat::kText;
  // trace, debug, info, warning, error, critical or off.
  std::string level = "info";
};

// Applies `options` to spdlog's default logger. Throws Error(kInvalidArgument) for an unknown
// level.
void configure_logging(const LogOptions& options);

// "text" or "json" (any case); nullopt otherwise.
std::optional<LogFormat> parse_log_format(std::string_view text);
// Whether `level` names a log level configure_logging accepts.
bool is_log_level(std::string_view level);

}  // namespace ergon
