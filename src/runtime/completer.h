// runtime/completer.h — stores the outcomes of finished attempts, then reports them.
//
// Group commit: whatever outcomes are waiting when the completer gets to them go in one
// transaction (Store::job_finish_many), so the batch grows with the load (one outcome alone is
// stored at once, no timer delays it) and a hundred no-op jobs cost one commit, not a hundred.
// Only then are the events reported and the jobs forgotten (JobSlots::settle), so nothing is
// reported done before it is durable and the heartbeat covers a job until then. An outcome the
// store refuses (the job is no longer this attempt's) is reported as kFenced.
//
// finish_now() stores one outcome at once, outside the batches, for the transitions that do not
// come from a returning handler (a stop's releases, abandoned timeouts, phantom claims).
//
// Thread-safety: enqueue(), finish_now() and release() from any thread; run_once() from one
// thread at a time (the completer's own once started); start()/stop() not concurrently.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "messaging/job_queue.h"
#include "runtime/events.h"
#include "runtime/job_slots.h"
#include "runtime/outcome.h"
#include "runtime/service.h"
#include "store/store.h"

namespace ergon::runtime {

// A finished attempt on its way to the store.
struct FinishedAttempt {
  SlotKey key;                         // (id, lease)
  int attempt = 0;                     // for the event
  std::optional<JobFinishParams> fin;  // unset: settled already (nothing left to write)
  std::optional<OwnedEvent> event;     // unset: nothing to report
};

// The attempt of `job` ending with `o` at `now` (the last progress report, if any, is written
// with it).
[[nodiscard]] FinishedAttempt finished_attempt(const JobRecord& job, const Outcome& o,
                                               std::string_view worker_id, TimePoint now,
                                               std::optional<Progress> progress = std::nullopt);

struct CompleterOptions {
  std::size_t max_batch = 500;  // outcomes per transaction at most
  void validate() const;
};

class Completer : public Service {
 public:
  // `queue`: the messaging transport, whose messages are removed once their job's outcome is
  // stored; may be null.
  Completer(Store& store, std::string worker_id, JobSlots& slots, const Events& events,
            messaging::JobQueue* queue, CompleterOptions options = {});
  // stop() stores every outcome still waiting before the thread ends.
  ~Completer();

  // Requires the attempt's slot finishing (JobSlots::finish or next).
  void enqueue(FinishedAttempt attempt);
  // Stores one batch of the waiting outcomes, reports them and forgets their slots; returns
  // how many outcomes it took.
  std::size_t run_once();

  // Stores one outcome now and reports it. While the database is down (ErrorCode::kStore) it
  // keeps trying; see completer.cc. false: not stored, left for orphan rescue.
  bool finish_now(const JobFinishParams& fin, JobEvent event);
  // Puts a Running job of ours back to Pending at its old place in the queue (its own run_at,
  // which has passed) and gives back the attempt it used, at once.
  bool release(const JobId& id, std::string_view job_type, int lease, int attempt, TimePoint run_at,
               std::string_view queue);

  // Held around a write of many of this worker's Running rows at once: the completer's batch
  // and the heartbeat of its jobs. Both change many of the same rows, in one statement or
  // transaction each, from two connections, and on PostgreSQL row locks taken in two orders
  // deadlock (found only after deadlock_timeout, a second). Taking them in one order in SQL (a
  // CTE with ORDER BY id FOR UPDATE) slows every batch on the hot path; a heartbeat every few
  // seconds that waits for one batch costs little. Other writers of Running rows never hold
  // several at once while waiting (the rescuer skips locked rows; a cancel and a single outcome
  // change one row).
  [[nodiscard]] std::mutex& rows_mutex() { return rows_mu_; }

 private:
  void loop() override;
  std::vector<char> store_batch(std::vector<FinishedAttempt>& batch);
  std::optional<std::vector<bool>> finish_many(const std::vector<JobFinishParams>& fins,
                                               bool& gave_up);
  void remove_message(const JobSlots::SettledMessage& m);

  const std::string worker_id_;
  JobSlots& slots_;
  const Events& events_;
  messaging::JobQueue* const queue_;
  const CompleterOptions options_;
  std::mutex rows_mu_;

  // cv_: outcomes queued, the stop.
  std::deque<FinishedAttempt> waiting_;  // guarded by mu_
};

}  // namespace ergon::runtime
