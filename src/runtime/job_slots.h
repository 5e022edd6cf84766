// runtime/job_slots.h — the jobs a worker holds, shared by its services.
//
// A job is held from its claim until its outcome is stored: waiting in the local queue
// (prefetch_jobs), running, or finished with its outcome on its way to the store. JobSlots keeps
// those jobs by (id, lease), the local queue, the slot accounting that sizes the claims, the
// claims under way and the phases of a stop. The producer and the consumer admit jobs, the
// executors take and finish them, the completer forgets them once their outcomes are stored,
// and the maintenance duties read and flag them.
//
// Slots, as the claims count them: jobs queued or running, plus finished jobs whose outcome is
// not stored yet beyond the first `capacity` of them (max_concurrent_jobs + prefetch_jobs). A
// handler that returns frees its slot at once (the completer stores its outcome with others in
// one transaction, meanwhile the next claim runs), but past `capacity` waiting outcomes count
// again: a store that stopped taking outcomes stops the claims too.
//
// Thread-safety: every method may be called from any thread and takes the one lock guarding
// all of the above. Listeners (on_change) run after a change that may let a claim take more or
// that ends a claim, without that lock, so a service may take its own lock in them; in turn a
// service must not hold that lock of its own while calling a method here that notifies them
// (marked "notifies").
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

#include "ergon/clock.h"
#include "messaging/job_queue.h"
#include "runtime/attempt_context.h"
#include "runtime/claims.h"
#include "store/store.h"

namespace ergon::runtime {

// A job held by this worker: (id, lease). A job rescued from this worker and claimed by it again
// has two slots while the first handler winds down.
using SlotKey = std::pair<JobId, int>;

struct Slot {
  std::string job_type;
  int attempt = 0;  // as the handler sees it
  int lease = 0;    // the fencing token
  int max_attempts = 1;
  std::stop_source stop;
  std::shared_ptr<AttemptContext> context;  // set once the attempt starts
  TimePoint claimed_at;  // set again when the attempt starts: its timeout runs from there
  TimePoint run_at;      // when the job was due: a release puts it back there
  std::optional<Duration> timeout;
  std::string queue;            // for the events' queue label
  int target = -1;              // its queue's limited ClaimTarget; -1: none
  std::uint64_t claim_seq = 0;  // claims up to this number are visible to a heartbeat
  bool cancel = false;          // cancel() was called: the outcome is Cancelled
  bool timed_out = false;       // the timeout passed: stop token fired
  bool abandoned = false;       // the grace passed too, or a stop gave the job back without it
  bool lost = false;            // the job is no longer ours (rescued elsewhere)
  bool finishing = false;       // the handler returned; its outcome is being stored
  std::optional<messaging::JobMessage> message;  // the queue message that brought the job
  TimePoint message_hidden_until;                // when that message would reappear
};

struct SlotOptions {
  int max_concurrent_jobs = 1;  // executors
  int prefetch_jobs = 0;        // room in the local queue beyond them
  // Per ClaimTarget (claims.h), its max_held: -1 for none.
  std::vector<int> target_limits = {-1};
  void validate() const;
};

class JobSlots {
 public:
  explicit JobSlots(SlotOptions options);
  JobSlots(const JobSlots&) = delete;
  JobSlots& operator=(const JobSlots&) = delete;

  // Adds a listener; before any thread uses this object.
  void on_change(std::function<void()> listener);

  // --- claims -------------------------------------------------------------------------------
  // How many jobs the next claim may take: the free slots plus the room in the local queue.
  // With a local queue, claims top it up in batches (once half of it has drained) rather than
  // one job at a time, unless an executor is idle.
  [[nodiscard]] int room() const;
  // The same within `target`'s limit.
  [[nodiscard]] int room(std::size_t target) const;
  // Counts a claim under way; false once the stop began (then no claim may start). stop()
  // waits for the claims counted here, so that what it gives back stays given back.
  [[nodiscard]] bool begin_claim();
  // The same for a claim for `target` of at most room(target) jobs, in one hold: returns that
  // room with the claim counted, 0 (nothing counted) when there is none, -1 once stopping.
  [[nodiscard]] int begin_claim(std::size_t target);
  void abort_claim();  // the claim failed; notifies
  struct Claimed {
    JobRecord job;
    SlotTerms terms;
    std::optional<messaging::JobMessage> message;  // the message that brought it (consumer)
    TimePoint message_hidden_until;
  };
  // The claim ended: its jobs get their slots (counted in their queue's limit, if any) and join
  // the local queue. Notifies.
  void end_claim(std::vector<Claimed> jobs, TimePoint now);
  struct Snapshot {
    std::size_t held = 0;
    std::uint64_t claim_seq = 0;  // claims ended so far
    int claims_in_flight = 0;
  };
  [[nodiscard]] Snapshot snapshot() const;

  // --- executors ----------------------------------------------------------------------------
  struct Next {
    enum class Action {
      kRun,      // start the attempt
      kCancel,   // cancelled while it waited: store it Cancelled without running it
      kRelease,  // the stop drains the pool: give it back untouched
      kSkip,     // nothing left to store: lost while it waited, or the stop gave it back already
    };
    Action action = Action::kRun;
    JobRecord job;
    std::stop_token stop;  // kRun
    int max_attempts = 1;  // kRun
  };
  // Takes the next job of the local queue; for every action but kRun its slot is finishing
  // already (notifies). With `wait`, blocks until there is one or the pool stops; nullopt when
  // the pool stopped with nothing left (or, without `wait`, when there is nothing).
  [[nodiscard]] std::optional<Next> next(bool wait);
  // The attempt of `key` starts now with `context`: its timeout runs from here.
  void started(const SlotKey& key, std::shared_ptr<AttemptContext> context, TimePoint now);
  struct Ended {
    bool cancel = false;
    std::optional<Duration> timed_out;  // the timeout, if it passed
  };
  // The handler of `key` returned: its slot and its place in its queue's limit are free, its
  // outcome is on its way to the completer. Notifies.
  Ended finish(const SlotKey& key);
  // Executors end once the local queue is empty.
  void stop_pool();

  // --- completer ----------------------------------------------------------------------------
  struct SettledMessage {
    messaging::JobMessage message;
    std::string job_type;
    int attempt = 0;
  };
  // Forgets the slots whose outcomes were stored (or refused, or given up: settled false);
  // returns the messages of the settled ones, to be removed from the queue. Notifies.
  std::vector<SettledMessage> settle(const std::vector<std::pair<SlotKey, bool>>& outcomes);

  // --- maintenance --------------------------------------------------------------------------
  // Calls f(key, slot) for every slot, under the lock: f may change the slot's flags and must
  // neither block nor call this object.
  template <class F>
  void visit(F&& f) {
    std::lock_guard lock(mu_);
    for (auto& [key, slot] : running_) f(key, slot);
  }
  // f(slot) for the slot of `key` if it is still held, under the lock (as visit).
  template <class F>
  void with_slot(const SlotKey& key, F&& f) {
    std::lock_guard lock(mu_);
    if (auto it = running_.find(key); it != running_.end()) f(it->second);
  }

  // --- stop, in this order ------------------------------------------------------------------
  // No claim starts from here on; the grace for running handlers ends at `deadline`. Notifies.
  void close(TimePoint deadline);
  [[nodiscard]] bool stopping() const;
  [[nodiscard]] bool past_stop_deadline(TimePoint now) const;
  // Waits for the claims under way: they may still bring jobs that the stop is to give back.
  void wait_claims_done();
  // No attempt starts from here on; every handler is told to stop. Returns the jobs waiting in
  // the local queue, their slots finishing: they go back at once. Notifies.
  std::vector<JobRecord> drain();
  // Waits until no job is held or `deadline` passes on `clock`.
  void wait_empty_until(Clock& clock, TimePoint deadline);
  struct Abandoned {
    JobId id;
    std::string job_type;
    int lease = 0, attempt = 0;
    TimePoint run_at;
    std::string queue;
  };
  // Marks every slot whose handler still runs (not finishing, not given up) abandoned and
  // returns them, so that nobody gives them back a second time.
  std::vector<Abandoned> abandon_rest();

  [[nodiscard]] std::size_t size() const;
  void wait_empty();  // until no job is held

 private:
  int occupied_locked() const;
  int room_locked() const;
  int room_locked(std::size_t target) const;
  void mark_finishing_locked(Slot& slot);
  void notify();

  const int max_;
  const int prefetch_;
  const int capacity_;  // max_ + prefetch_: jobs held, running or waiting to
  const std::vector<int> limits_;
  std::vector<std::function<void()>> listeners_;  // set before the threads start

  mutable std::mutex mu_;
  std::condition_variable work_cv_;  // executors: work queued, pool stop
  std::condition_variable idle_cv_;  // a claim ended, a slot was forgotten
  std::map<SlotKey, Slot> running_;  // guarded by mu_
  std::deque<JobRecord> queue_;      // claimed, waiting for an executor; guarded by mu_
  std::vector<int> held_;            // per target, its jobs not finishing; guarded by mu_
  int finishing_ = 0;                // slots with finishing set; guarded by mu_
  std::uint64_t claim_seq_ = 0;      // claims ended so far; guarded by mu_
  int claims_in_flight_ = 0;         // guarded by mu_
  bool stopping_ = false;            // no claim starts; guarded by mu_
  bool draining_ = false;            // and no attempt starts; guarded by mu_
  bool pool_stop_ = false;           // guarded by mu_
  TimePoint stop_deadline_;          // guarded by mu_
};

}  // namespace ergon::runtime
