#include "runtime/attempt_context.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/log.h"
#include "runtime/outcome.h"
#include "store/text_rules.h"

namespace ergon::runtime {

AttemptContext::AttemptContext(Store& store, const JobRecord& job, std::string_view worker_id,
                               int max_attempts, std::stop_token stop, Duration progress_interval,
                               std::size_t max_result_bytes)
    : store_(store),
      id_(job.id),
      job_type_(job.job_type),
      worker_id_(worker_id),
      attempt_(job.attempt),
      lease_(job.lease),
      max_attempts_(max_attempts),
      stop_(std::move(stop)),
      interval_(progress_interval),
      max_result_bytes_(max_result_bytes),
      tags_(job.tags),
      meta_(job.meta) {}

void AttemptContext::report_progress(std::string_view message, std::optional<int> percent) {
  std::lock_guard lock(mu_);
  if (percent) percent = std::clamp(*percent, 0, 100);
  unwritten_ = Progress{truncate_utf8(message, kMaxProgressMessageBytes), percent};
  TimePoint now = store_.clock().now();
  if (last_write_ && now - *last_write_ < interval_) return;
  write_locked(now);
}

void AttemptContext::set_result_json(std::string json) {
  // As a payload: one JSON document of valid UTF-8, not too deep, without \u0000, which
  // PostgreSQL's jsonb cannot keep (store/text_rules.h).
  check_json("the result", json);
  std::lock_guard lock(mu_);
  result_ = std::move(json);
}

std::optional<std::string> AttemptContext::take_result() {
  std::lock_guard lock(mu_);
  return std::exchange(result_, std::nullopt);
}

nlohmann::json AttemptContext::meta() const {
  if (!meta_) return nullptr;
  return nlohmann::json::parse(*meta_, nullptr, false);
}

template <class Conn>
void AttemptContext::complete_with(Conn* conn) {
  std::lock_guard lock(mu_);
  if (result_ && result_->size() > max_result_bytes_) {
    throw Error(ErrorCode::kInvalidArgument, result_too_large(result_->size(), max_result_bytes_));
  }
  JobFinishParams p;
  p.id = id_;
  p.attempt = lease_;
  p.worker_id = worker_id_;
  p.status = JobStatus::kCompleted;
  p.now = store_.clock().now();
  if (unwritten_) {
    p.progress_message = unwritten_->message;
    p.progress_percent = unwritten_->percent;
  }
  p.result = result_;
  p.attempt_outcome = AttemptOutcome::kCompleted;
  if (!store_.job_finish_tx(conn, p)) {
    throw Error(ErrorCode::kStore, "job " + id_.to_string() + " attempt " +
                                       std::to_string(attempt_) +
                                       " is no longer this worker's; roll the transaction back");
  }
  unwritten_.reset();
  completes_in_transaction_ = true;
}

void AttemptContext::complete_in_transaction(sqlite3* conn) { complete_with(conn); }
void AttemptContext::complete_in_transaction(pg_conn* conn) { complete_with(conn); }

bool AttemptContext::completes_in_transaction() const {
  std::lock_guard lock(mu_);
  return completes_in_transaction_;
}

void AttemptContext::flush_if_due() {
  std::lock_guard lock(mu_);
  if (!unwritten_) return;
  TimePoint now = store_.clock().now();
  if (last_write_ && now - *last_write_ < interval_) return;
  write_locked(now);
}

std::optional<Progress> AttemptContext::take_unwritten() {
  std::lock_guard lock(mu_);
  return std::exchange(unwritten_, std::nullopt);
}

void AttemptContext::write_locked(TimePoint now) {
  last_write_ = now;
  try {
    if (!store_.job_progress_update(
            {id_, lease_, worker_id_, unwritten_->message, unwritten_->percent})) {
      log::job(spdlog::level::debug, id_, job_type_, attempt_,
               "progress not written: the job is no longer this attempt's");
    }
    unwritten_.reset();
  } catch (const std::exception& e) {
    // Keep the report: it goes out with the next write or with the outcome.
    log::job(spdlog::level::warn, id_, job_type_, attempt_, "progress not written: {}", e.what());
  }
}

}  // namespace ergon::runtime
