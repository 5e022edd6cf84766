#include "ops/jobs.h"

#include "ergon/time_range.h"
#include "ops/filter.h"
#include "store/store.h"

namespace ergon::ops {
namespace {

// The most rows one job_list returns (JobFilter::limit).
constexpr int kMaxListLimit = 10000;

// Why a retry left `r` alone.
std::string retry_refusal(const JobRecord& r) {
  if (r.status == JobStatus::kFailed || r.status == JobStatus::kCancelled) {
    return "another job holds its unique key '" + r.unique_key.value_or("") + "'";
  }
  return "it is " + std::string(to_string(r.status)) +
         "; only Failed or Cancelled jobs are retried";
}

void require_condition(const JobFilter& f) {
  if (!has_condition(f)) {
    throw Error(ErrorCode::kInvalidArgument,
                "a bulk action needs at least one condition: it would act on every job");
  }
}

}  // namespace

Jobs::Jobs(std::shared_ptr<Store> store) : store_(store), runner_(store), audit_(store) {}

JobPage Jobs::list(JobFilter filter) const {
  const int limit = filter.limit;
  // One row more than the page tells whether another page follows; at the store's largest
  // page there is no room for it, and a full page may have more behind it.
  const bool look_ahead = limit >= 1 && limit < kMaxListLimit;
  if (look_ahead) ++filter.limit;
  JobPage page{.jobs = store_->job_list(filter)};
  const auto n = static_cast<std::size_t>(limit);
  if (look_ahead ? page.jobs.size() > n : page.jobs.size() == n && n > 0) {
    page.jobs.resize(n);
    page.next_before_id = page.jobs.back().id;
  }
  return page;
}

std::optional<JobRecord> Jobs::get(const JobId& id) const { return store_->job_get(id); }

std::vector<AttemptRecord> Jobs::attempts(const JobId& id) const {
  return store_->job_attempt_list(id);
}

JobChange Jobs::retry_job(const JobId& id, std::string_view actor) {
  if (!store_->job_retry(id, store_->clock().now())) {
    auto r = store_->job_get(id);
    if (!r) return {.change = Change::kNotFound};
    return {.change = Change::kRefused, .refusal = retry_refusal(*r)};
  }
  return {.audited = audit_.record(actor, "retry", id.to_string(), "retried")};
}

JobChange Jobs::delete_job(const JobId& id, std::string_view actor) {
  if (!store_->job_delete(id)) {
    if (!store_->job_get(id)) return {.change = Change::kNotFound};
    return {.change = Change::kRefused, .refusal = "it is Running (cancel it first)"};
  }
  return {.audited = audit_.record(actor, "delete", id.to_string(), "deleted")};
}

CancelChange Jobs::cancel_job(const JobId& id, std::string_view actor) {
  CancelChange out{.outcome = runner_.cancel(id)};
  switch (out.outcome) {
    case CancelOutcome::kCancelled:
      out.audited = audit_.record(actor, "cancel", id.to_string(), "cancelled");
      break;
    case CancelOutcome::kRequested:
      out.audited = audit_.record(actor, "cancel", id.to_string(), "cancel_requested");
      break;
    case CancelOutcome::kAlreadyFinished:
      break;
  }
  return out;
}

BulkChange Jobs::retry_matching(const JobFilter& filter, std::string_view actor) {
  require_condition(filter);
  BulkChange out{.count = store_->job_retry_matching(filter, store_->clock().now()),
                 .filter = describe(filter)};
  out.audited = audit_.record(actor, "bulk.retry", out.filter, std::to_string(out.count) + " jobs");
  return out;
}

BulkChange Jobs::delete_matching(const JobFilter& filter, std::string_view actor) {
  require_condition(filter);
  BulkChange out{.count = store_->job_delete_matching(filter), .filter = describe(filter)};
  out.audited =
      audit_.record(actor, "bulk.delete", out.filter, std::to_string(out.count) + " jobs");
  return out;
}

PurgeResult Jobs::purge(JobStatus status, Duration older_than, int batch,
                        std::string_view older_than_words, std::string_view actor) {
  PurgeResult out{.finished_before = saturating_sub(store_->clock().now(), older_than)};
  out.purged = runner_.purge_jobs(status, older_than, batch);
  out.audited = audit_.record(
      actor, "purge",
      "status=" + std::string(to_string(status)) + " older-than=" + std::string(older_than_words),
      std::to_string(out.purged) + " jobs");
  return out;
}

}  // namespace ergon::ops
