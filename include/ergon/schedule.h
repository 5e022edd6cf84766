// ergon/schedule.h — recurring jobs: options and what is stored about a schedule.
//
// A schedule is a row of `scheduled_jobs`, keyed by a stable name (default: the job type), that
// enqueues its job at each occurrence of a cron expression in a time zone. Any number of
// workers may run the scheduler against one database: each slot is fired exactly once, because
// the job is inserted in the same transaction that advances next_run_time, conditional on its
// old value. See docs/cron.md for the syntax, the DST rules and the policies.
//
// Plain values; copy them freely.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ergon/types.h"

namespace ergon {

// What to do with slots that passed while no scheduler ran (all workers down, a long pause).
enum class MisfirePolicy {
  kRunOnce,  // one job for all missed slots (default)
  kSkip,     // no job for missed slots; wait for the next future slot
  kRunAll,   // one job per missed slot, at most misfire_limit of them (the most recent)
};

// What to do when a slot comes while the previous run of the schedule is not finished.
enum class OverlapPolicy {
  kAllow,  // enqueue anyway (default)
  kSkip,   // skip the slot while the previous job is Pending or Running
};

std::string_view to_string(MisfirePolicy p);
std::string_view to_string(OverlapPolicy p);
std::optional<MisfirePolicy> parse_misfire_policy(std::string_view text);  // run_once|skip|run_all
std::optional<OverlapPolicy> parse_overlap_policy(std::string_view text);  // allow|skip

struct ScheduleOptions {
  std::string name{};             // empty: the job type
  std::string time_zone = "UTC";  // IANA name, e.g. "Europe/Berlin"
  bool with_seconds = false;      // the expression has 6 fields (seconds first)
  MisfirePolicy misfire = MisfirePolicy::kRunOnce;
  int misfire_limit = 10;  // kRunAll: at most this many missed slots are run
  OverlapPolicy overlap = OverlapPolicy::kAllow;
  std::string queue = "default";
  int priority = 0;
  std::optional<int> max_attempts{};
  // The tags and meta of every job the schedule starts, by JobOptions' rules: at most 20 tags,
  // each 1 to 100 bytes of UTF-8 without control characters, none repeated; meta a JSON
  // object's text, at most 64 KiB. Empty: none.
  std::vector<std::string> tags{};
  std::string meta{};
};

// One row of scheduled_jobs.
struct ScheduleRecord {
  JobId id;
  std::string name;
  std::string job_type;
  std::string job_data;
  std::string cron_expression;
  bool with_seconds = false;
  std::string time_zone;
  TimePoint next_run_time;
  std::optional<TimePoint> last_run_time;  // the slot last fired
  bool is_enabled = true;
  MisfirePolicy misfire = MisfirePolicy::kRunOnce;
  int misfire_limit = 10;
  OverlapPolicy overlap = OverlapPolicy::kAllow;
  std::string queue;
  int priority = 0;
  std::optional<int> max_attempts;
  std::vector<std::string> tags;     // ScheduleOptions::tags
  std::optional<std::string> meta;   // ScheduleOptions::meta: a JSON object's text, if given
  std::optional<JobId> last_job_id;  // the job the last fired slot enqueued
};

}  // namespace ergon
