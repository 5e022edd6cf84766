// ops/jobs.h — what operators do to jobs (`ergon jobs ...`, `ergon purge`, the dashboard's job
// pages): list, show, retry, delete and cancel one job or every job a filter matches, and
// purge; each change records its audit entry (ops/audit.h).
//
// Errors from the store propagate as ergon::Error (kInvalidArgument, kStore, ...); an unknown
// id is an outcome of retry and delete (Change::kNotFound), which callers report per id, and an
// Error(kNotFound) from cancel. Thread-safety: a Jobs is as shareable as its Store.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ergon/job_runner.h"
#include "ergon/store.h"
#include "ops/audit.h"

namespace ergon::ops {

struct JobPage {
  std::vector<JobRecord> jobs;  // newest first
  // Where the next page starts (the filter's before_id), when more jobs follow.
  std::optional<JobId> next_before_id;
};

enum class Change {
  kDone,
  kNotFound,
  kRefused,  // the job is in a state the action does not apply to
};

struct JobChange {
  Change change = Change::kDone;
  std::string refusal;  // kRefused: why, for a person ("it is Running (cancel it first)")
  Audited audited;      // kDone: whether the audit record was written
};

struct CancelChange {
  CancelOutcome outcome = CancelOutcome::kCancelled;
  Audited audited;  // kCancelled and kRequested only: nothing changes otherwise
};

struct BulkChange {
  int count = 0;       // jobs changed
  std::string filter;  // describe(filter): the audit record's target
  Audited audited;
};

struct PurgeResult {
  std::int64_t purged = 0;
  TimePoint finished_before;  // the jobs purged finished before this
  Audited audited;
};

class Jobs {
 public:
  explicit Jobs(std::shared_ptr<Store> store);

  // At most filter.limit jobs, newest first, and whether more follow.
  [[nodiscard]] JobPage list(JobFilter filter) const;
  [[nodiscard]] std::optional<JobRecord> get(const JobId& id) const;
  // The job's attempts, oldest first (empty for an unknown job).
  [[nodiscard]] std::vector<AttemptRecord> attempts(const JobId& id) const;

  // A Failed or Cancelled job runs again: Pending, due now, attempts and last error kept (a job
  // whose attempts are used up gets one more). Refused in another state, or while another job
  // holds its unique key. The store wakes the workers of this process.
  JobChange retry_job(const JobId& id, std::string_view actor);
  // Deletes a job that is not Running (a Running one must be cancelled first).
  JobChange delete_job(const JobId& id, std::string_view actor);
  // A Pending job is Cancelled at once, a Running one asked to stop. Error(kNotFound) for an
  // unknown id.
  CancelChange cancel_job(const JobId& id, std::string_view actor);

  // The bulk forms, over every job `filter` matches (its limit ignored), each in one
  // transaction; jobs that do not qualify are skipped. Error(kInvalidArgument) for a filter
  // without a condition (has_condition), so that no empty form acts on every job.
  BulkChange retry_matching(const JobFilter& filter, std::string_view actor);
  BulkChange delete_matching(const JobFilter& filter, std::string_view actor);

  // Deletes the jobs of a final `status` that finished more than `older_than` ago, `batch` rows
  // per transaction. `older_than_words` is the operator's spelling of it, for the audit log.
  PurgeResult purge(JobStatus status, Duration older_than, int batch,
                    std::string_view older_than_words, std::string_view actor);

 private:
  std::shared_ptr<Store> store_;
  JobRunner runner_;
  AuditLog audit_;
};

}  // namespace ergon::ops
