// ops/filter.h — an operator's job filter, from words to a JobFilter, checked and described
// once for the CLI (`--status`, `--since`, ...) and the dashboard (`status=`,
// `created_after=`, ...).
//
// Each caller gives the filter as text, field by field, with the names it calls the fields
// (its options or its parameters) so that a message names what the operator typed. Every
// refusal is a FieldError: the CLI turns it into a usage error, the dashboard into a 400.
// Pure functions; safe from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "ergon/error.h"
#include "ergon/store.h"

namespace ergon::ops {

// A value the operator gave that cannot be used. what() is "NAME: DETAIL".
class FieldError : public Error {
 public:
  FieldError(std::string name, std::string detail);
  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] const std::string& detail() const { return detail_; }

 private:
  std::string name_;
  std::string detail_;
};

// The filter in words: each field empty when not given.
struct FilterText {
  std::string status;  // any case
  std::string type, queue;
  std::string created_after, created_before;  // ISO-8601 (years 0000 to 9999), or see below
  std::string text;                           // searched for in job_data and error_message
  std::string before_id;                      // a job id: the next page starts after it
  std::string tag;                            // a tag the job carries
};

// What the caller calls each field (the dashboard's parameters by default).
struct FilterNames {
  std::string_view status = "status";
  std::string_view type = "type";
  std::string_view queue = "queue";
  std::string_view created_after = "created_after";
  std::string_view created_before = "created_before";
  std::string_view text = "text";
  std::string_view before_id = "before_id";
  std::string_view tag = "tag";
};

// Checks every field and builds the filter (limit left at its default). Type and queue must
// fit their columns and the text 200 bytes; created_after must be earlier than created_before.
// An instant past TimePoint's range stops at its end, which selects what the words say
// (created_after 2300 matches nothing, created_before 2300 everything). With `ago_from`, an
// instant may also be a duration back from it ("2h": parse_duration).
JobFilter parse_filter(const FilterText& text, const FilterNames& names = {},
                       std::optional<TimePoint> ago_from = std::nullopt);

// Whether the filter narrows anything: a bulk action needs it, so that an empty form never
// turns into "every job".
[[nodiscard]] bool has_condition(const JobFilter& f);

// "status=Failed type=mail text=\"50%\" tag=\"vip\"" for the audit log and messages; "all jobs"
// when the filter has no condition. The searched text and the tag are quoted as JSON, so that
// no text can pass for another condition and no byte of it is other than UTF-8.
[[nodiscard]] std::string describe(const JobFilter& f);

// A status name in any case; FieldError naming `name`.
JobStatus parse_status(std::string_view text, std::string_view name = "status");
// A job id; FieldError ("not a job id") naming `name`.
JobId parse_job_id(std::string_view text, std::string_view name = "id");

// A duration in an operator's words: "250ms", "90s", "5m", "2h", "1d" or a TimeSpan
// "[d.]hh:mm:ss[.fffffff]". nullopt when `text` is not shaped like one; FieldError naming
// `name` when it is but is negative or longer than kMaxDuration.
std::optional<Duration> parse_duration(std::string_view text, std::string_view name);

}  // namespace ergon::ops
