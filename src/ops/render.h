// ops/render.h — operators' nouns as JSON, one way for the CLI's --json and the dashboard's
// API: jobs, a job's latest attempt, schedules, workers, queues, limits and audit records.
//
// Text from the store may hold bytes that are not UTF-8 (rows stored before the text rule, or
// written by hand; docs/storage.md#text), and json::dump would throw on them: every string
// from the store goes through clean_text (store/text_rules.h), so invalid bytes and NUL come
// out as U+FFFD; control characters are kept and JSON escapes them. Pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

#include "ergon/schedule.h"
#include "ergon/store.h"
#include "ops/workers.h"

namespace ergon::ops {

// How stored text goes into the JSON.
enum class Text {
  kClean,  // invalid bytes and NUL as U+FFFD: what every JSON answer uses
  // Exactly as stored, for a terminal view that escapes each byte itself (printable), so that
  // the operator sees the byte the store holds. Never dump such JSON without an error handler.
  kAsStored,
};

// Text from the store as a JSON string (Text::kClean).
[[nodiscard]] nlohmann::json text_json(std::string_view s);

// Every column of a job; job_data, result and meta as JSON when they parse (the store holds
// only valid JSON), as text otherwise; payload_preview its first 120 bytes.
[[nodiscard]] nlohmann::json job_to_json(const JobRecord& r, Text text = Text::kClean);
// A job for a listing page: the columns that fit a row, the error cut to 300 bytes and the
// payload to its preview.
[[nodiscard]] nlohmann::json job_summary_to_json(const JobRecord& r);
// A job's attempt history (Store::job_attempt_list), oldest first, each with its duration.
[[nodiscard]] nlohmann::json attempts_to_json(const std::vector<AttemptRecord>& attempts);

[[nodiscard]] nlohmann::json schedule_to_json(const ScheduleRecord& s);
[[nodiscard]] nlohmann::json worker_to_json(const WorkerView& w);
[[nodiscard]] nlohmann::json queue_to_json(const QueueRecord& q);
[[nodiscard]] nlohmann::json limit_to_json(const TypeLimit& l);
[[nodiscard]] nlohmann::json audit_to_json(const AuditRecord& a);

}  // namespace ergon::ops
