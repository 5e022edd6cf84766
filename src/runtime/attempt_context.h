// runtime/attempt_context.h — the JobContext of one running attempt.
//
// Progress is throttled: a report is written at once if the last write of this attempt is at
// least `interval` old, otherwise it is kept as "unwritten" and goes out with the next report
// past the interval, with flush_if_due() (called periodically by the worker), or with the
// attempt's outcome (so the last report is always stored). Writes are fenced by attempt and
// worker, touch only the progress columns, and their failures are logged, never thrown.
//
// Thread-safety: report_progress() is called by the handler's thread, flush_if_due() by the
// worker's flusher; both lock mu_.
#pragma once

#include <mutex>
#include <optional>
#include <string>

#include "ergon/job.h"
#include "store/store.h"

namespace ergon::runtime {

struct Progress {
  std::string message;
  std::optional<int> percent;
};

class AttemptContext final : public JobContext {
 public:
  // `max_result_bytes`: WorkerOptions::max_result_bytes, for a completion in the handler's
  // transaction (the worker checks the others' in decide_outcome).
  AttemptContext(Store& store, const JobRecord& job, std::string_view worker_id, int max_attempts,
                 std::stop_token stop, Duration progress_interval,
                 std::size_t max_result_bytes = std::size_t{1} << 20);

  JobId job_id() const override { return id_; }
  std::string_view job_type() const override { return job_type_; }
  int attempt() const override { return attempt_; }
  int max_attempts() const override { return max_attempts_; }
  std::stop_token stop_token() const override { return stop_; }
  using JobContext::report_progress;
  void report_progress(std::string_view message, std::optional<int> percent) override;
  void set_result_json(std::string json) override;
  const std::vector<std::string>& tags() const override { return tags_; }
  nlohmann::json meta() const override;
  void complete_in_transaction(sqlite3* conn) override;
  void complete_in_transaction(pg_conn* conn) override;

  // Whether the handler asked to complete in its own transaction (then the worker checks
  // whether that transaction committed instead of writing the outcome itself).
  bool completes_in_transaction() const;

  // Writes the unwritten report if the interval has passed since the last write.
  void flush_if_due();
  // The report not yet written, if any; clears it (the caller writes it with the outcome).
  std::optional<Progress> take_unwritten();
  // The result the handler set, if any; clears it.
  std::optional<std::string> take_result();

 private:
  void write_locked(TimePoint now);  // requires mu_
  template <class Conn>
  void complete_with(Conn* conn);

  Store& store_;
  const JobId id_;
  const std::string job_type_;
  const std::string worker_id_;
  const int attempt_;
  const int lease_;  // the fencing token of this attempt's writes
  const int max_attempts_;
  const std::stop_token stop_;
  const Duration interval_;
  const std::size_t max_result_bytes_;
  const std::vector<std::string> tags_;
  const std::optional<std::string> meta_;

  mutable std::mutex mu_;
  std::optional<Progress> unwritten_;      // guarded by mu_
  std::optional<TimePoint> last_write_;    // guarded by mu_
  std::optional<std::string> result_;      // guarded by mu_
  bool completes_in_transaction_ = false;  // guarded by mu_
};

}  // namespace ergon::runtime
