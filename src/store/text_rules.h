// store/text_rules.h — the one rule for text that comes from outside, on every backend.
//
// Identifiers (job type, queue, unique key, group key, schedule name, worker name) are names
// that operators filter on and terminals print: they are refused unless they are valid UTF-8
// without control characters and within their length (check_identifier). Free text (error and
// progress messages, a command's stderr) is never refused, since refusing an outcome would
// leave its job Running: invalid bytes become U+FFFD and it is cut at a character boundary
// (clean_text). A payload is one JSON document, nested at most kMaxJsonDepth deep, with no
// \u0000 (check_job_data). JobRunner checks identifiers and payloads before a store sees them;
// both stores clean free text as they write it, so SQLite and PostgreSQL store the same bytes.
// docs/storage.md#text has the rule for users.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace ergon {

struct JobFilter;

// Limits in bytes of UTF-8, with those of store.h (job type, queue, group key, messages).
inline constexpr std::size_t kMaxUniqueKeyBytes = 200;
inline constexpr std::size_t kMaxScheduleNameBytes = 200;
inline constexpr std::size_t kMaxWorkerNameBytes = 200;
// Arrays and objects inside one another. Both stores take more (SQLite's json_valid 2000
// levels in 3.40, 1000 from 3.45; PostgreSQL's jsonb up to its stack depth), each failing in
// its own way; one lower limit, checked before either sees the payload, makes them agree.
inline constexpr int kMaxJsonDepth = 128;

// True when `text` is well-formed UTF-8 (no overlong forms, surrogates or code points above
// U+10FFFF). NUL is well-formed.
bool is_valid_utf8(std::string_view text);

// Throws Error(kInvalidArgument), naming `what`, unless `value` is valid UTF-8 without
// control characters (U+0000-U+001F, U+007F-U+009F) and is 1 to max_bytes bytes long (0 to
// max_bytes when `optional`: empty then means "none").
void check_identifier(std::string_view what, std::string_view value, std::size_t max_bytes,
                      bool optional = false);

// Throws Error(kInvalidArgument), naming `job_type`, unless `json` is exactly one JSON
// document (nothing but whitespace after it) nested at most kMaxJsonDepth deep whose strings
// and keys hold no NUL character (`\u0000`: PostgreSQL's jsonb cannot store it).
void check_job_data(std::string_view job_type, std::string_view json);
// The same for any JSON text the stores keep (meta, a result); `of` names it in the error.
void check_json(const std::string& of, std::string_view json);

// Throws Error(kInvalidArgument) unless the filter's texts (job type, queue, the text searched
// for) are valid UTF-8 without NUL: PostgreSQL refuses such a parameter and SQLite would match
// nothing, and both stores must give one answer. Called by each store where it builds a
// filter's SQL.
void check_filter(const JobFilter& filter);

// Free text made storable the same way on every backend: each byte that is not part of a
// well-formed UTF-8 sequence, and each NUL, becomes U+FFFD; then the text is cut to at most
// `max_bytes`, never inside a character (truncate_utf8). Control characters are kept (readers
// escape them).
std::string clean_text(std::string_view text, std::size_t max_bytes = std::string_view::npos);

// `text` as a terminal may show it: control characters (C0, DEL, C1), the bidirectional
// overrides and isolates (U+202A-U+202E, U+2066-U+2069) and bytes that are not UTF-8 are
// written as escapes (`\x1b`, `\u202e`, `\xff`). With keep_newlines, a line feed and a tab
// stay as they are (a multi-line message on its own lines).
std::string printable(std::string_view text, bool keep_newlines = false);

}  // namespace ergon
