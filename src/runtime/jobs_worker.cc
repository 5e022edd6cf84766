// The worker: a producer that claims, a pool that runs attempts, a flusher for throttled
// progress. See ergon/jobs_worker.h for the contract and ARCHITECTURE.md for the picture.
#include "ergon/jobs_worker.h"

#include <cxxabi.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <deque>
#include <map>
#include <random>
#include <thread>
#include <typeinfo>

#include "core/log.h"
#include "ergon/config.h"
#include "ergon/time_range.h"
#include "runtime/attempt_context.h"
#include "runtime/backoff.h"
#include "runtime/command_supervisor.h"
#include "messaging/job_queue.h"
#include "runtime/scheduler.h"
#include "runtime/worker_identity.h"
#include "store/store.h"
#include "store/text_rules.h"

namespace ergon {
namespace {

std::string demangled_name(const std::type_info& ti) {
  int status = 0;
  char* name = abi::__cxa_demangle(ti.name(), nullptr, nullptr, &status);
  std::string out = status == 0 && name ? name : ti.name();
  std::free(name);
  return out;
}

// "<exception type>: <what>", the form stored in error_message.
std::string describe_exception(const std::exception& e) {
  return demangled_name(typeid(e)) + ": " + e.what();
}

std::string make_worker_id(const std::string& name) {
  std::string base = name;
  if (base.empty()) {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "unknown");
    base = std::string(host) + ":" + std::to_string(getpid());
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::mt19937 rng{std::random_device{}()};
  std::string suffix;
  for (int i = 0; i < 6; ++i) suffix += kHex[rng() % 16];
  return base + ":" + suffix;
}

}  // namespace

class JobsWorker::Impl {
 public:
  Impl(std::shared_ptr<Store> store, HandlerRegistry handlers, WorkerOptions options)
      : store_(std::move(store)),
        clock_(store_->clock()),
        handlers_(std::move(handlers)),
        opts_(std::move(options)),
        worker_id_(make_worker_id(opts_.worker_name)),
        max_(opts_.max_concurrent_jobs > 0
                 ? opts_.max_concurrent_jobs
                 : 5 * static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))),
        capacity_(max_ + std::max(0, opts_.prefetch_jobs)),
        targets_(claim_targets(opts_)),
        job_types_(handlers_.types()) {
    if (opts_.messaging) mq_ = messaging::make_job_queue(*opts_.messaging);
    subscription_ = store_->notifier().subscribe([this](TimePoint due) { on_notify(due); });
    cancel_subscription_ = store_->cancel_notifier().subscribe([this](TimePoint) {
      std::lock_guard lock(mu_);
      heartbeat_now_ = true;
      flusher_cv_.notify_all();
    });
  }

  ~Impl() {
    stop();
    store_->notifier().unsubscribe(subscription_);
    store_->cancel_notifier().unsubscribe(cancel_subscription_);
  }

  void start() {
    {
      std::lock_guard lock(mu_);
      if (producer_.joinable() || stopping_) {
        throw Error(ErrorCode::kInvalidArgument, "worker already started (or stopped)");
      }
    }
    if (mq_) {
      // Before anything runs: a queue that cannot be reached or a store without an outbox is
      // a configuration error to report now, not a stream of failures later.
      mq_->prepare();
      store_->outbox_enable();
    }
    // Without the lock: recovery notifies, and listeners take mu_.
    recover_at_start();
    drop_unrelayed_outbox(clock_.now());
    std::lock_guard lock(mu_);
    start_pool_locked();
    producer_ = std::thread([this] { produce(); });
    if (mq_ && opts_.messaging->relay) relay_ = std::thread([this] { relay_loop(); });
    if (mq_ && opts_.messaging->consume) consumer_ = std::thread([this] { consume_loop(); });
    if (opts_.run_scheduler) {
      scheduler_ = std::make_unique<runtime::Scheduler>(
          *store_, runtime::SchedulerOptions{opts_.scheduled_jobs_check_interval,
                                             opts_.misfire_grace, opts_.on_schedule_fired});
      scheduler_->start();
    }
    spdlog::info("worker {} started: {} slots, {} job types", worker_id_, max_, handlers_.size());
  }

  void stop() {
    std::vector<std::pair<JobId, Slot>> leftovers;
    TimePoint deadline;
    {
      std::unique_lock lock(mu_);
      if (stopped_) return;
      stopping_ = true;
      // The grace period starts now, before any handler hears of the stop.
      deadline = saturating_add(clock_.now(), opts_.shutdown_timeout);
      stop_deadline_ = deadline;
      cv_.notify_all();
      // No claim starts from here on. One under way may still bring jobs, among them jobs that
      // this stop is about to give back (a released job is due at once): wait for it, so that
      // what the stop gives back stays given back.
      idle_cv_.wait(lock, [&] { return claims_in_flight_ == 0; });
      draining_ = true;
      // Handlers learn at once that we are shutting down; cooperative ones return early and
      // are released by their executor, the others get shutdown_timeout to finish.
      for (auto& [key, slot] : running_) slot.stop.request_stop();
      // Jobs waiting in the local queue (prefetch_jobs) never started: they go back at once,
      // at their old place in the queue, without waiting for an executor.
      while (!queue_.empty()) {
        JobRecord job = std::move(queue_.front());
        queue_.pop_front();
        mark_finishing_locked(running_.at({job.id, job.lease}));
        queue_outcome_locked(
            {job.id, job.lease, job.attempt, release_params(job.id, job.lease, job.run_at),
             JobEvent{
                 JobEvent::Kind::kReleased, job.id, job.job_type, job.attempt, {}, job.queue}});
      }
      cv_.notify_all();
      pool_cv_.notify_all();
    }
    if (scheduler_) scheduler_->stop();
    if (producer_.joinable()) producer_.join();  // no claim happens after this line
    if (consumer_.joinable()) consumer_.join();  // nor through a message
    if (relay_.joinable()) relay_.join();
    {
      std::unique_lock lock(mu_);
      while (!running_.empty() && clock_.now() < deadline) {
        clock_.wait_until(lock, idle_cv_, deadline);
      }
      for (auto& [key, slot] : running_) {
        // Skip attempts whose outcome is being stored right now, and mark the rest so that
        // nobody else gives them back a second time.
        if (slot.finishing || slot.abandoned) continue;
        slot.abandoned = true;
        leftovers.emplace_back(key.first, slot);
      }
    }
    // Handlers still running after the grace period: give their jobs back now. If such a
    // handler finishes later, its outcome is fenced out (the job is no longer Running for it).
    for (auto& [id, slot] : leftovers)
      release(id, slot.job_type, slot.lease, slot.attempt, slot.run_at, slot.queue);
    {
      std::lock_guard lock(mu_);
      pool_stop_ = true;
      pool_cv_.notify_all();
      flusher_cv_.notify_all();
    }
    for (auto& t : pool_) t.join();  // waits for handlers to return; they were asked to stop
    {
      // Every outcome is queued by now: the completer stores what is left and ends.
      std::lock_guard lock(mu_);
      completer_stop_ = true;
      completer_cv_.notify_all();
    }
    if (completer_.joinable()) completer_.join();
    if (flusher_.joinable()) flusher_.join();
    {
      std::lock_guard lock(mu_);
      stopped_ = true;
    }
    if (registered_) {
      try {
        store_->worker_remove(worker_id_);
      } catch (const std::exception& e) {
        spdlog::warn("worker {}: could not unregister: {}", worker_id_, e.what());
      }
    }
    if (!pool_.empty()) spdlog::info("worker {} stopped", worker_id_);
  }

  std::size_t claim_once() {
    {
      std::lock_guard lock(mu_);
      start_pool_locked();
    }
    return claim_round(true);
  }

  void wait_quiet() {
    // A claim ends (idle_cv_) in the same hold that records whether its target has more; a
    // producer that saw more to claim checks again in the hold that counts its claim in
    // claims_in_flight_. So once this holds it stays so until the next wake-up.
    std::unique_lock lock(mu_);
    idle_cv_.wait(lock,
                  [&] { return claims_in_flight_ == 0 && (stopping_ || !claimable_locked()); });
  }

  void wait_idle() {
    std::unique_lock lock(mu_);
    idle_cv_.wait(lock, [&] { return running_.empty(); });
  }

  std::size_t running_jobs() {
    std::lock_guard lock(mu_);
    return running_.size();
  }

  const std::string& worker_id() const { return worker_id_; }
  int max_concurrent_jobs() const { return max_; }

 private:
  struct Slot {
    std::string job_type;
    int attempt;  // as the handler sees it
    int lease;    // the fencing token; running_ is keyed by it
    int max_attempts;
    std::stop_source stop;
    std::shared_ptr<runtime::AttemptContext> context;  // set once the attempt starts
    TimePoint claimed_at;  // set again when the attempt starts: its timeout runs from there
    TimePoint run_at;      // when the job was due: a release puts it back there
    std::optional<Duration> timeout;
    std::string queue;            // for the events' queue label
    int target = -1;              // its queue's limited ClaimTarget in targets_; -1: none
    std::uint64_t claim_seq = 0;  // claims up to this number are visible to a heartbeat
    bool cancel = false;          // cancel() was called: the outcome is Cancelled
    bool timed_out = false;       // the timeout passed: stop token fired
    bool abandoned = false;       // the grace passed too: the attempt was failed without it
    bool lost = false;            // the job is no longer ours (rescued elsewhere)
    bool finishing = false;       // the handler returned; its outcome is being stored
    std::optional<messaging::JobMessage> message;  // the queue message that brought the job
    TimePoint message_hidden_until;              // when that message would reappear
  };

  void start_pool_locked() {
    if (!pool_.empty()) return;
    pool_started_at_ = clock_.now();
    for (int i = 0; i < max_; ++i) pool_.emplace_back([this] { execute_loop(); });
    flusher_ = std::thread([this] { maintain_loop(); });
    completer_ = std::thread([this] { complete_loop(); });
  }

  // Slots taken, as the producer counts them: attempts queued or running, plus finished
  // attempts whose outcome is not stored yet beyond the first capacity_ of them. A handler
  // that returns frees its slot at once (the completer stores its outcome with others in one
  // transaction, meanwhile the next claim runs), but past capacity_ waiting outcomes count
  // again: a store that stopped taking outcomes stops the claims too.
  int occupied_locked() const {
    int occupied = static_cast<int>(running_.size()) - finishing_;
    if (finishing_ > capacity_) occupied += finishing_ - capacity_;
    return occupied;
  }

  // How many jobs the next claim may take: the free slots plus the room in the local queue
  // (prefetch_jobs). With a local queue, claims top it up in batches (once half of it has
  // drained) rather than one job at a time, unless an executor is idle.
  int room_locked() const {
    int room = capacity_ - occupied_locked();
    if (room <= 0) return 0;
    if (opts_.prefetch_jobs > 0 && room < (opts_.prefetch_jobs + 1) / 2) {
      int executing = static_cast<int>(running_.size() - queue_.size()) - finishing_;
      if (!queue_.empty() || executing >= max_) return 0;
    }
    return room;
  }

  // The job types a claim may take (WorkerOptions::claim_unhandled_types): the handlers'.
  [[nodiscard]] std::optional<std::span<const std::string>> claim_types() const {
    if (opts_.claim_unhandled_types) return std::nullopt;
    return std::span<const std::string>(job_types_);
  }

  // What a claim round asks the store for (WorkerOptions::queue_limits): one claim per limited
  // queue, then one for the served queues without a limit. Without queue_limits there is one
  // target, opts_.queues with no limit of its own, and a round is the one claim it always was.
  struct ClaimTarget {
    std::vector<std::string> queues;  // the claim's filter; empty: every queue
    int max_held = -1;                // the queue's limit; -1: none (the pool's room only)
    int held = 0;                     // its jobs held (slots not finishing); guarded by mu_
    // A claim may find jobs: its last one filled every place it asked for, or a wake-up or a
    // poll came since (look_again_locked). Guarded by mu_.
    bool more = true;
  };

  // A worker with limits lists every queue it serves (the constructor checks it): the store's
  // claim names the queues to take from and has no way to leave some out, so a claim "from
  // every queue" would take a limited queue's jobs past its limit, and a job, once claimed, is
  // never handed back just to keep a limit. When every served queue has a limit there is no
  // unlimited target at all (an empty filter would mean every queue).
  static std::vector<ClaimTarget> claim_targets(const WorkerOptions& o) {
    std::vector<ClaimTarget> out;
    for (const auto& [queue, max_held] : o.queue_limits) out.push_back({{queue}, max_held});
    std::vector<std::string> rest;
    for (const auto& q : o.queues) {
      if (!o.queue_limits.contains(q)) rest.push_back(q);
    }
    if (o.queue_limits.empty() || !rest.empty()) out.push_back({std::move(rest)});
    return out;
  }

  // How many jobs a claim for `t` may take: the pool's room, within the queue's limit.
  int room_locked(const ClaimTarget& t) const {
    int room = room_locked();
    return t.max_held < 0 ? room : std::min(room, t.max_held - t.held);
  }

  // Some target may have jobs and has room for them.
  bool claimable_locked() const {
    return std::any_of(targets_.begin(), targets_.end(),
                       [&](const ClaimTarget& t) { return t.more && room_locked(t) > 0; });
  }

  // Every target may have jobs (a wake-up, a due time, a poll). The poll deadline starts again
  // when some target next finds fewer jobs than it asked for.
  void look_again_locked() {
    for (ClaimTarget& t : targets_) t.more = true;
    poll_at_ = TimePoint::max();
  }

  // Takes in the wake-ups: a notify for a job due now, or a remembered due time that has
  // passed, makes every target look again. A claim after this sees every job due by `now`, so
  // a remembered due time up to `now` is served by it; a later one stays remembered.
  void note_wakeups_locked(TimePoint now) {
    if (wake_ || next_due_ <= now) look_again_locked();
    wake_ = false;  // a notify from here on means "look again"
    if (next_due_ <= now) next_due_ = TimePoint::max();
  }

  void on_notify(TimePoint due) {
    std::lock_guard lock(mu_);
    if (due <= clock_.now()) {
      wake_ = true;
    } else {
      next_due_ = std::min(next_due_, due);
    }
    cv_.notify_all();
  }

  std::optional<Duration> effective_timeout(const JobRecord& job) const {
    if (job.timeout) return job.timeout;
    if (const auto* e = handlers_.find(job.job_type)) return e->options.timeout;
    return std::nullopt;
  }

  int effective_max_attempts(const JobRecord& job) const {
    if (job.max_attempts) return *job.max_attempts;
    if (const auto* e = handlers_.find(job.job_type); e && e->options.max_attempts) {
      return *e->options.max_attempts;
    }
    return opts_.default_max_attempts;
  }

  // One claim round: one claim for each target that may have jobs (`more`) and has room, each
  // for at most that room; the claimed jobs are queued for the pool. `all`: every target may
  // have jobs (TEST_claim_once). Returns how many jobs were claimed. The limited queues are
  // claimed first: they take at most their limits, and a slot that frees goes to a limited
  // queue before the unlimited rest, which could otherwise keep it from ever getting one. A
  // priority does not reach across targets; within one the usual order holds.
  std::size_t claim_round(bool all) {
    TimePoint now = clock_.now();
    std::size_t claimed = 0;
    {
      std::lock_guard lock(mu_);
      if (all) look_again_locked();
      note_wakeups_locked(now);
    }
    for (ClaimTarget& t : targets_) {
      int room;
      bool renew;
      {
        std::lock_guard lock(mu_);
        if (stopping_) break;
        room = room_locked(t);
        if (!t.more || room <= 0) continue;
        ++claims_in_flight_;  // in the same hold as the stopping_ check: stop() waits for it
        renew = registry_renewal_due_locked(now);
      }
      std::vector<JobRecord> jobs;
      try {
        jobs = store_->job_claim({worker_id_, room, now, t.queues, renew, claim_types()});
      } catch (...) {
        // The claim may still have committed (the connection died after COMMIT): the heartbeat
        // finds such jobs and gives them back. Jobs of earlier targets are in the pool already.
        std::lock_guard lock(mu_);
        --claims_in_flight_;
        idle_cv_.notify_all();
        throw;
      }
      std::lock_guard lock(mu_);
      --claims_in_flight_;
      idle_cv_.notify_all();
      if (renew) registry_renewed_at_ = std::max(registry_renewed_at_, now);
      ++claim_seq_;
      for (auto& job : jobs) hand_to_pool_locked(std::move(job), now, std::nullopt);
      // Every place asked for was filled: more may be due. (Compared with the room at the claim
      // itself, not with the room now: a slot that frees in between would otherwise make a
      // full claim look partial, and the producer would sleep until the next poll with room
      // and jobs due.)
      t.more = static_cast<int>(jobs.size()) == room;
      claimed += jobs.size();
    }
    return claimed;
  }

  // A claimed job gets its slot (counted in its queue's limit, if any) and joins the pool's
  // queue (with the message that brought it, if any).
  void hand_to_pool_locked(JobRecord job, TimePoint now, std::optional<messaging::JobMessage> m) {
    Slot slot{job.job_type, job.attempt, job.lease, effective_max_attempts(job), {}, {}};
    slot.claimed_at = now;
    slot.run_at = job.run_at;
    slot.timeout = effective_timeout(job);
    slot.queue = job.queue;
    slot.claim_seq = claim_seq_;
    // The limited targets come first; without queue_limits this looks at one target.
    for (std::size_t i = 0; i < targets_.size() && targets_[i].max_held >= 0; ++i) {
      if (targets_[i].queues[0] == job.queue) {
        slot.target = static_cast<int>(i);
        ++targets_[i].held;
        break;
      }
    }
    if (m) {
      slot.message = std::move(m);
      slot.message_hidden_until = saturating_add(now, mq_->visibility_timeout());
    }
    running_.emplace(std::pair(job.id, job.lease), std::move(slot));
    queue_.push_back(std::move(job));
    pool_cv_.notify_all();
  }

  // The handler of `slot` returned, or will never run: its outcome is on its way to the
  // completer. Its pool slot (see occupied_locked) and its place in its queue's limit are free.
  void mark_finishing_locked(Slot& slot) {
    slot.finishing = true;
    ++finishing_;
    if (slot.target >= 0) --targets_[slot.target].held;
  }

  void produce() {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      note_wakeups_locked(clock_.now());
      if (!claimable_locked()) {
        // Nothing to claim now: each target has no room (the pool is full, or its queue is at
        // its limit) or found fewer jobs than it asked for at its last claim. Sleep until a
        // target that may have jobs gets room (a slot frees), a job of this process is due (a
        // notify, or next_due_, which may move earlier while we sleep), or the polling
        // interval passes (jobs enqueued by other processes); the last two make every target
        // look again. Each is an event: a saturated worker does not spin. When every target is
        // only waiting for room, there is nothing to poll for.
        bool idle = std::any_of(targets_.begin(), targets_.end(),
                                [](const ClaimTarget& t) { return !t.more; });
        if (idle && poll_at_ == TimePoint::max()) {
          poll_at_ = saturating_add(clock_.now(), opts_.polling_interval);
        }
        auto deadline = [&] { return std::min(poll_at_, next_due_); };
        while (!stopping_ && !wake_ && !claimable_locked() && clock_.now() < deadline()) {
          if (deadline() == TimePoint::max()) {
            cv_.wait(lock);  // a slot frees, a notify, or a due time arrives: all notify cv_
          } else {
            clock_.wait_until(lock, cv_, deadline());
          }
        }
        if (clock_.now() >= poll_at_) look_again_locked();
        continue;
      }
      lock.unlock();
      bool failed = false;
      try {
        claim_round(false);
        if (claim_failures_ > 0) {
          spdlog::info("worker {}: claiming works again after {} failed tries", worker_id_,
                       claim_failures_);
          claim_failures_ = 0;
        }
      } catch (const std::exception& e) {
        // Once, then every hundredth try: an outage must not flood the log at polling rate.
        if (claim_failures_++ % 100 == 0) {
          spdlog::error("worker {}: claiming jobs failed: {}", worker_id_, e.what());
        }
        failed = true;
      }
      lock.lock();
      // The database failed: try again at the next poll (or wake-up), not at once.
      if (failed) {
        for (ClaimTarget& t : targets_) t.more = false;
        idle_cv_.notify_all();  // TEST_wait_quiet
      }
    }
  }

  // Messaging: the relay publishes the outbox (jobs that became due, written by the store's
  // triggers in the jobs' own transactions) and deletes what it published. A crash between
  // the two publishes again: a duplicate message, which the consumer's claim makes harmless.
  void relay_loop() {
    std::unique_lock lock(mu_);
    long failures = 0;
    TimePoint next_trigger_check = saturating_add(clock_.now(), opts_.heartbeat_interval);
    while (!stopping_) {
      lock.unlock();
      std::size_t sent = 0, seen = 0;
      try {
        // A worker that saw no live relay may have dropped the triggers while this one was
        // starting (drop_unrelayed_outbox): put them back.
        if (clock_.now() >= next_trigger_check) {
          next_trigger_check = saturating_add(clock_.now(), opts_.heartbeat_interval);
          if (!store_->outbox_state().enabled) {
            store_->outbox_enable();
            spdlog::warn("worker {}: relay: the outbox triggers were gone; installed again",
                         worker_id_);
          }
        }
        std::vector<OutboxRow> rows = store_->outbox_peek(kRelayBatch);
        seen = rows.size();
        std::vector<std::int64_t> done;
        TimePoint now = clock_.now();
        for (const auto& row : rows) {
          mq_->publish(row.job_id, elapsed(now, row.due_at));
          done.push_back(row.id);
        }
        sent = done.size();
        store_->outbox_remove(done);
        failures = 0;
      } catch (const std::exception& e) {
        if (failures++ % 100 == 0) spdlog::error("worker {}: relay: {}", worker_id_, e.what());
      }
      lock.lock();
      if (sent == kRelayBatch && seen == sent) continue;  // there may be more
      TimePoint until = saturating_add(clock_.now(), opts_.messaging->relay_interval);
      while (!stopping_ && clock_.now() < until) clock_.wait_until(lock, cv_, until);
    }
  }

  // Messaging: receives messages for the free slots, claims each named job through the store
  // (a duplicate, or a job claimed elsewhere, is simply not claimed) and hands it to the pool
  // with its message, which is removed once the outcome is stored.
  void consume_loop() {
    std::unique_lock lock(mu_);
    long failures = 0;
    while (!stopping_) {
      int free = room_locked();
      if (free <= 0) {
        cv_.wait(lock, [&] { return stopping_ || room_locked() > 0; });
        continue;
      }
      lock.unlock();
      std::size_t received = 0;
      try {
        std::vector<messaging::JobMessage> messages = mq_->receive(std::min(free, 32));
        received = messages.size();
        for (auto& m : messages) take_message(m);
        failures = 0;
      } catch (const std::exception& e) {
        if (failures++ % 100 == 0) spdlog::error("worker {}: consumer: {}", worker_id_, e.what());
      }
      lock.lock();
      if (received > 0) continue;
      TimePoint until = saturating_add(clock_.now(), opts_.messaging->receive_interval);
      while (!stopping_ && clock_.now() < until) clock_.wait_until(lock, cv_, until);
    }
  }

  void take_message(messaging::JobMessage& m) {
    TimePoint now = clock_.now();
    // By id only from the served queues without a limit: a job of a limited queue waits for
    // the producer's claim, which keeps the limit (as a limited job type's does). With every
    // served queue limited there is no such claim (an empty filter would mean every queue).
    if (const ClaimTarget& rest = targets_.back(); rest.max_held < 0) {
      {
        std::lock_guard lock(mu_);
        if (stopping_) return;  // the message reappears after its visibility timeout
        ++claims_in_flight_;    // stop() waits for it, as for the producer's claims
      }
      std::optional<JobRecord> job;
      try {
        job =
            store_->job_claim_id({worker_id_, 1, now, rest.queues, false, claim_types()}, m.job_id);
      } catch (...) {
        std::lock_guard lock(mu_);
        --claims_in_flight_;
        idle_cv_.notify_all();
        throw;
      }
      std::lock_guard lock(mu_);
      --claims_in_flight_;
      idle_cv_.notify_all();
      if (job) {
        ++claim_seq_;
        hand_to_pool_locked(std::move(*job), now, std::move(m));
        return;
      }
    }
    // Not claimable. Pending: not due yet (hide the message until it is), or in a paused
    // queue, one this worker does not serve, or one with a limit here (hide it for a
    // visibility timeout; the polling claim takes a limited queue's job). Anything
    // else (running elsewhere, finished, deleted): the message has nothing left to trigger.
    std::optional<JobRecord> seen = store_->job_get(m.job_id);
    if (seen && seen->status == JobStatus::kPending) {
      mq_->postpone(m, seen->run_at > now ? elapsed(now, seen->run_at) : mq_->visibility_timeout());
    } else {
      mq_->remove(m);
    }
  }

  struct SettledMessage {
    messaging::JobMessage message;
    std::string job_type;
    int attempt = 0;
  };

  void remove_message(const SettledMessage& m) {
    try {
      mq_->remove(m.message);
    } catch (const std::exception& e) {
      // It reappears after its visibility timeout; the consumer then finds the job finished.
      log::job(spdlog::level::warn, m.message.job_id, m.job_type, m.attempt,
               "worker {} could not remove its message: {}", worker_id_, e.what());
    }
  }

  // Keeps the messages of running jobs hidden: each is extended by a visibility timeout when
  // less than half of its current one is left.
  void extend_messages(TimePoint now) {
    if (!mq_) return;
    struct Due {
      std::pair<JobId, int> key;  // (id, lease), running_'s key
      messaging::JobMessage m;
      std::string job_type;
      int attempt;
    };
    std::vector<Due> due;
    Duration vt = mq_->visibility_timeout();
    {
      std::lock_guard lock(mu_);
      for (auto& [key, slot] : running_) {
        if (slot.message && elapsed(now, slot.message_hidden_until) < vt / 2) {
          due.push_back({key, *slot.message, slot.job_type, slot.attempt});
        }
      }
    }
    for (auto& [key, m, job_type, attempt] : due) {
      try {
        mq_->postpone(m, vt);
      } catch (const std::exception& e) {
        log::job(spdlog::level::warn, key.first, job_type, attempt,
                 "worker {} could not extend its message: {}", worker_id_, e.what());
        continue;
      }
      std::lock_guard lock(mu_);
      if (auto it = running_.find(key); it != running_.end() && it->second.message) {
        it->second.message->receipt = m.receipt;
        it->second.message_hidden_until = saturating_add(now, vt);
      }
    }
  }

  void execute_loop() {
    std::unique_lock lock(mu_);
    while (true) {
      pool_cv_.wait(lock, [&] { return pool_stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // pool_stop_ and nothing left
      JobRecord job = std::move(queue_.front());
      queue_.pop_front();
      Slot& slot = running_.at({job.id, job.lease});
      if (!draining_ && (slot.lost || slot.cancel)) {
        // Lost (rescued elsewhere: another worker may run it now) or cancelled while it waited
        // in the local queue: never start it. A lost job has nothing left to store here; a
        // cancelled one is stored Cancelled, fenced like any outcome.
        mark_finishing_locked(slot);
        std::optional<JobFinishParams> fin;
        std::optional<OwnedEvent> event;
        if (!slot.lost) {
          fin.emplace();
          fin->id = job.id;
          fin->attempt = job.lease;
          fin->worker_id = worker_id_;
          fin->status = JobStatus::kCancelled;
          fin->now = clock_.now();
          fin->error_message = "cancelled before it started";
          event = JobEvent{JobEvent::Kind::kCancelled,
                           job.id,
                           job.job_type,
                           job.attempt,
                           "cancelled",
                           job.queue};
        }
        queue_outcome_locked({job.id, job.lease, job.attempt, std::move(fin), std::move(event)});
        continue;
      }
      bool skip = draining_;
      bool already_released = slot.abandoned;
      if (!skip) {
        slot.claimed_at = clock_.now();  // the timeout runs from the start, not the claim
        slot.context = std::make_shared<runtime::AttemptContext>(
            *store_, job, worker_id_, slot.max_attempts, slot.stop.get_token(),
            opts_.progress_interval);
      }
      auto context = slot.context;
      if (skip) {
        // Claimed but never started before the stop: give it back untouched (unless stop()
        // already did).
        mark_finishing_locked(slot);
        if (already_released) {
          queue_outcome_locked({job.id, job.lease, job.attempt, std::nullopt, std::nullopt});
        } else {
          queue_outcome_locked(
              {job.id, job.lease, job.attempt, release_params(job.id, job.lease, job.run_at),
               JobEvent{
                   JobEvent::Kind::kReleased, job.id, job.job_type, job.attempt, {}, job.queue}});
        }
        continue;
      }
      lock.unlock();
      run_attempt(job, *context);
      lock.lock();
    }
  }

  // A finished attempt on its way to the store. The completer stores outcomes in batches, one
  // transaction each (Store::job_finish_many), then reports them (the event) and frees their
  // slots: nothing is reported done before it is durable.
  // An event reported later, by the completer: it owns its text, because the attempt's
  // strings (its JobRecord, its error) are gone by then.
  struct OwnedEvent {
    JobEvent::Kind kind;
    std::string job_type, error, queue;
    OwnedEvent(const JobEvent& e)  // NOLINT(google-explicit-constructor): built from JobEvent{}
        : kind(e.kind), job_type(e.job_type), error(e.error), queue(e.queue) {}
    JobEvent view(const JobId& id, int attempt) const {
      return {kind, id, job_type, attempt, error, queue};
    }
  };
  struct Outcome {
    JobId id;
    int lease = 0;                       // running_'s key
    int attempt = 0;                     // for the event
    std::optional<JobFinishParams> fin;  // unset: settled already (nothing left to write)
    std::optional<OwnedEvent> event;
  };
  static constexpr std::size_t kFinishBatch = 500;

  // Requires the slot marked finishing (and counted in finishing_).
  void queue_outcome_locked(Outcome o) {
    outcomes_.push_back(std::move(o));
    completer_cv_.notify_all();
    cv_.notify_all();  // the slot is free for the producer (see occupied_locked)
  }

  // Group commit: whatever outcomes are waiting when the completer gets to them go in one
  // transaction, so the batch grows with the load (one outcome alone is stored at once, no
  // timer delays it) and a hundred no-op jobs cost one commit, not a hundred.
  void complete_loop() {
    std::unique_lock lock(mu_);
    while (true) {
      completer_cv_.wait(lock, [&] { return completer_stop_ || !outcomes_.empty(); });
      if (outcomes_.empty()) return;  // stopping, and everything stored
      std::vector<Outcome> batch;
      while (!outcomes_.empty() && batch.size() < kFinishBatch) {
        batch.push_back(std::move(outcomes_.front()));
        outcomes_.pop_front();
      }
      lock.unlock();
      std::vector<char> settled = store_outcomes(batch);
      lock.lock();
      // A message that brought a job is removed only now that its outcome is in the store;
      // unsettled, it reappears after its visibility timeout and the job is looked at again.
      std::vector<SettledMessage> messages;
      for (std::size_t i = 0; i < batch.size(); ++i) {
        auto it = running_.find({batch[i].id, batch[i].lease});
        if (it == running_.end()) continue;
        if (settled[i] && it->second.message) {
          messages.push_back(
              {std::move(*it->second.message), it->second.job_type, batch[i].attempt});
        }
        if (it->second.finishing) --finishing_;
        running_.erase(it);
      }
      if (!messages.empty()) {
        lock.unlock();
        for (auto& m : messages) remove_message(m);
        lock.lock();
      }
      cv_.notify_all();
      idle_cv_.notify_all();
    }
  }

  // Stores a batch of outcomes and reports each; returns, per outcome, whether it is settled
  // (stored, or fenced out because the job is no longer ours). While the database is down
  // (kStore) the whole batch is retried as finish_now retries one outcome; any other error
  // sends the outcomes one by one through finish_now, so one bad outcome cannot hold back
  // the others.
  std::vector<char> store_outcomes(std::vector<Outcome>& batch) {
    std::vector<char> settled(batch.size(), 1);
    std::vector<JobFinishParams> fins;
    std::vector<std::size_t> at;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (batch[i].fin) {
        fins.push_back(*batch[i].fin);
        at.push_back(i);
      }
    }
    if (fins.size() == 1) {
      // Alone: the single-statement path (one round trip instead of BEGIN, UPDATE, COMMIT).
      settled[at[0]] =
          finish_now(fins[0], batch[at[0]].event->view(batch[at[0]].id, batch[at[0]].attempt));
      batch[at[0]].event.reset();  // reported by finish_now
    } else if (!fins.empty()) {
      std::optional<std::vector<bool>> stored;
      bool gave_up = false;
      for (int i = 0;; ++i) {
        try {
          std::lock_guard rows(rows_mu_);
          stored = store_->job_finish_many(fins);
          break;
        } catch (const std::exception& e) {
          const auto* err = dynamic_cast<const Error*>(&e);
          if (err == nullptr || err->code() != ErrorCode::kStore) break;
          if (past_stop_deadline()) {
            spdlog::error("worker {}: {} outcome(s) not stored, left for orphan rescue: {}",
                          worker_id_, fins.size(), e.what());
            gave_up = true;
            break;
          }
          if (i < 5 || i % 30 == 0) {
            spdlog::warn("worker {}: storing {} outcome(s) failed (try {}), retrying: {}",
                         worker_id_, fins.size(), i + 1, e.what());
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(i < 5 ? 50 << i : 1000));
        }
      }
      for (std::size_t k = 0; k < at.size(); ++k) {
        Outcome& o = batch[at[k]];
        if (stored) {
          if (!(*stored)[k]) o.event->kind = JobEvent::Kind::kFenced;
        } else if (gave_up) {
          settled[at[k]] = 0;
          o.event.reset();
        } else {
          settled[at[k]] = finish_now(fins[k], o.event->view(o.id, o.attempt));
          o.event.reset();
        }
      }
    }
    for (auto& o : batch) {
      if (o.event) emit(o.event->view(o.id, o.attempt));
    }
    return settled;
  }

  // Runs the handler and queues the attempt's outcome for the completer.
  void run_attempt(const JobRecord& job, runtime::AttemptContext& ctx) {
    emit({JobEvent::Kind::kStarted, job.id, job.job_type, job.attempt, {}, job.queue});
    JobFinishParams fin;
    fin.id = job.id;
    fin.attempt = job.lease;
    fin.worker_id = worker_id_;
    enum class Result { kDone, kRetryable, kPermanent, kStopped, kSnoozed } result = Result::kDone;
    Duration snooze{};
    std::string error;
    const auto* entry = handlers_.find(job.job_type);
    if (entry == nullptr) {
      result = Result::kPermanent;
      error = "no handler is registered for job type '" + job.job_type + "'";
    } else {
      try {
        entry->invoke(job.job_data, ctx);
      } catch (const Snooze& s) {
        result = Result::kSnoozed;
        snooze = s.delay();
      } catch (const NonRetryableError& e) {
        result = Result::kPermanent;
        error = describe_exception(e);
      } catch (const std::exception& e) {
        result = Result::kRetryable;
        error = describe_exception(e);
      } catch (...) {
        result = Result::kRetryable;
        error = "unknown exception (not derived from std::exception)";
      }
    }
    bool cancelled = false;
    {
      std::lock_guard lock(mu_);
      Slot& slot = running_.at({job.id, job.lease});
      mark_finishing_locked(slot);
      if (result == Result::kDone) {
        // nothing to classify
      } else if (slot.cancel) {
        cancelled = true;
      } else if (slot.timed_out && result == Result::kRetryable) {
        error = "timed out after " + format_timespan(*slot.timeout) + " (" + error + ")";
      }
    }
    if (cancelled) {
      fin.status = JobStatus::kCancelled;
      fin.error_message = "cancelled (" + error + ")";
      if (auto p = ctx.take_unwritten()) {
        fin.progress_message = std::move(p->message);
        fin.progress_percent = p->percent;
      }
      fin.now = clock_.now();
      return queue_outcome(
          fin, {JobEvent::Kind::kCancelled, job.id, job.job_type, job.attempt, error, job.queue});
    }
    if (result == Result::kRetryable && ctx.stop_requested() && shutting_down()) {
      result = Result::kStopped;
    }
    if (result == Result::kDone && ctx.completes_in_transaction()) {
      // The handler completed the job in its own transaction. If that committed, the job is
      // Completed for this attempt and there is nothing left to write; if it rolled back, the
      // job is still Running for us and the attempt fails like any other.
      try {
        auto now_stored = store_->job_get(job.id);
        if (now_stored && now_stored->status == JobStatus::kCompleted &&
            now_stored->lease == job.lease) {
          std::lock_guard lock(mu_);
          return queue_outcome_locked(
              {job.id, job.lease, job.attempt, std::nullopt,
               JobEvent{
                   JobEvent::Kind::kCompleted, job.id, job.job_type, job.attempt, {}, job.queue}});
        }
        result = Result::kRetryable;
        error = "the handler's transaction that completed the job did not commit";
      } catch (const std::exception& e) {
        result = Result::kRetryable;
        error = std::string("cannot check the transactional completion: ") + e.what();
      }
    }
    if (auto p = ctx.take_unwritten()) {
      fin.progress_message = std::move(p->message);
      fin.progress_percent = p->percent;
    }
    fin.now = clock_.now();
    JobEvent::Kind kind = JobEvent::Kind::kCompleted;
    switch (result) {
      case Result::kDone:
        fin.status = JobStatus::kCompleted;
        break;
      case Result::kPermanent:
        fin.status = JobStatus::kFailed;
        fin.error_message = error;
        kind = JobEvent::Kind::kFailed;
        break;
      case Result::kRetryable:
        fin.error_message = error;
        if (job.attempt >= ctx.max_attempts()) {
          fin.status = JobStatus::kFailed;
          kind = JobEvent::Kind::kFailed;
        } else {
          fin.status = JobStatus::kPending;
          fin.run_at =
              saturating_add(fin.now, runtime::retry_delay(job.attempt, opts_.retry_base_delay,
                                                           opts_.retry_max_delay, unit_random()));
          kind = JobEvent::Kind::kRetryScheduled;
        }
        break;
      case Result::kStopped:
        return queue_outcome(
            release_params(job.id, job.lease, job.run_at, &fin),
            {JobEvent::Kind::kReleased, job.id, job.job_type, job.attempt, {}, job.queue});
      case Result::kSnoozed:
        // A release to a later time: the attempt is given back, the job is due at now + delay.
        fin.status = JobStatus::kPending;
        fin.run_at = saturating_add(fin.now, snooze);
        fin.give_back_attempt = true;
        kind = JobEvent::Kind::kSnoozed;
        break;
    }
    queue_outcome(fin, {kind, job.id, job.job_type, job.attempt, error, job.queue});
  }

  void queue_outcome(const JobFinishParams& fin, const JobEvent& event) {
    std::lock_guard lock(mu_);
    queue_outcome_locked({fin.id, fin.attempt, event.attempt, fin, event});
  }

  // Puts a Running job of ours back to Pending at its old place in the queue (its own run_at,
  // which has passed), and gives back the attempt it used. At once, not through the completer:
  // for jobs whose handler is still running (stop, phantom claims).
  bool release(const JobId& id, std::string_view job_type, int lease, int attempt, TimePoint run_at,
               std::string_view queue) {
    return finish_now(release_params(id, lease, run_at),
                      {JobEvent::Kind::kReleased, id, job_type, attempt, {}, queue});
  }

  JobFinishParams release_params(const JobId& id, int lease, TimePoint run_at,
                                 const JobFinishParams* from = nullptr) {
    JobFinishParams fin = from ? *from : JobFinishParams{};
    fin.id = id;
    fin.attempt = lease;
    fin.worker_id = worker_id_;
    fin.status = JobStatus::kPending;
    fin.now = clock_.now();
    fin.run_at = run_at;  // for the local wake-up; the row keeps its own
    fin.keep_run_at = true;
    fin.error_message.reset();
    // The attempt is given back; the fencing token (the lease) keeps growing.
    fin.give_back_attempt = true;
    return fin;
  }

  // Stores an outcome. While the database is down (ErrorCode::kStore: lost connection, server
  // restart, busy file) the worker keeps trying with back-off up to a second, for as long as
  // it runs: the job stays Running under this worker, its heartbeat resumes with the database,
  // and the outcome lands then, so an outage neither loses the result nor re-runs the job.
  // Any other error is tried five times. A stopping worker gives up once its shutdown grace
  // has passed; the job is then left Running for orphan rescue. The waits are real time (the
  // database comes back in real time), not the worker's clock.
  bool finish_now(const JobFinishParams& fin, JobEvent event) {
    for (int i = 0;; ++i) {
      try {
        if (!store_->job_finish(fin)) event.kind = JobEvent::Kind::kFenced;
        break;
      } catch (const std::exception& e) {
        const auto* err = dynamic_cast<const Error*>(&e);
        bool outage = err != nullptr && err->code() == ErrorCode::kStore;
        if ((!outage && i >= 4) || past_stop_deadline()) {
          log::job(spdlog::level::err, fin.id, event.job_type, event.attempt,
                   "outcome not stored, left for orphan rescue: {}", e.what());
          return false;
        }
        if (i < 5 || i % 30 == 0) {
          log::job(spdlog::level::warn, fin.id, event.job_type, event.attempt,
                   "storing the outcome failed (try {}), retrying: {}", i + 1, e.what());
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(i < 5 ? 50 << i : 1000));
      }
    }
    emit(event);
    return true;
  }

  bool past_stop_deadline() {
    std::lock_guard lock(mu_);
    return stopping_ && clock_.now() >= stop_deadline_;
  }

  // The maintenance loop: throttled progress, heartbeats (and what they reveal: cancelled and
  // lost jobs), timeouts, the rescuer and the pruner. One thread, one tick per
  // progress_interval; each duty runs when its own interval is due.
  void maintain_loop() {
    // Duties are timed from when the pool started (not from when this thread got to run), so
    // that their schedule does not depend on thread start-up order.
    TimePoint now = pool_started_at_;
    TimePoint next_heartbeat = now, next_rescue = now,
              next_prune = saturating_add(now, opts_.prune_interval);
    TimePoint next_outbox_check =
        saturating_add(now, opts_.prune_interval);  // start() checked once
    std::unique_lock lock(mu_);
    while (!pool_stop_) {
      std::vector<std::shared_ptr<runtime::AttemptContext>> contexts;
      for (auto& [key, slot] : running_) {
        if (slot.context) contexts.push_back(slot.context);
      }
      bool heartbeat_now = std::exchange(heartbeat_now_, false);
      lock.unlock();
      for (auto& c : contexts) c->flush_if_due();
      now = clock_.now();
      bool jobs_due = heartbeat_now || now >= next_heartbeat;
      heartbeat(now, jobs_due);
      if (jobs_due) next_heartbeat = saturating_add(now, opts_.heartbeat_interval);
      check_timeouts(now);
      extend_messages(now);
      if (now >= next_rescue) {
        rescue(now);
        next_rescue = saturating_add(now, opts_.orphaned_jobs_check_interval);
      }
      if (now >= next_prune) {
        prune(now);
        next_prune = saturating_add(now, opts_.prune_interval);
      }
      if (now >= next_outbox_check) {
        drop_unrelayed_outbox(now);
        next_outbox_check = saturating_add(now, opts_.prune_interval);
      }
      lock.lock();
      TimePoint deadline =
          std::min({saturating_add(clock_.now(), opts_.progress_interval), next_heartbeat,
                    saturating_add(registry_renewed_at_, opts_.heartbeat_interval)});
      while (!pool_stop_ && !heartbeat_now_ && clock_.now() < deadline) {
        clock_.wait_until(lock, flusher_cv_, deadline);
      }
    }
  }

  // Runs a maintenance duty; a backend without it turns the duty off (logged once). Returns
  // false when the duty failed. With `failures` (the failures in a row, kept by the caller), a
  // duty that runs often logs like the claims: the first failure, then every hundredth, and
  // once when it works again, so that an outage does not flood the log at the duty's rate.
  template <class F>
  bool duty(bool& enabled, const char* what, F&& fn) {
    return duty(enabled, what, nullptr, std::forward<F>(fn));
  }
  template <class F>
  bool duty(bool& enabled, const char* what, long* failures, F&& fn) {
    if (!enabled) return true;
    std::string error;
    try {
      fn();
      if (failures && *failures > 0) {
        spdlog::info("worker {}: {} work again after {} failed tries", worker_id_, what,
                     std::exchange(*failures, 0));
      }
      return true;
    } catch (const Error& e) {
      if (e.code() == ErrorCode::kUnsupported) {
        enabled = false;
        spdlog::info("worker {}: {} off: {}", worker_id_, what, e.what());
        return true;
      }
      error = e.what();
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (!failures) {
      spdlog::warn("worker {}: {} failed: {}", worker_id_, what, error);
    } else if ((*failures)++ % 100 == 0) {
      spdlog::warn("worker {}: {} failed ({} in a row): {}", worker_id_, what, *failures, error);
    }
    return false;
  }

  // The registry's heartbeat rides on a claim when one is due anyway (an idle worker polls):
  // a claim renews it once it is this old, early enough that the maintenance loop, which
  // renews it after a full heartbeat_interval, does not also have to (the next poll comes
  // within a polling_interval, give or take the claim's own time). Never younger than half a
  // heartbeat_interval: with polling slower than heartbeats, a busy worker's frequent claims
  // would otherwise each write the registry row.
  bool registry_renewal_due_locked(TimePoint now) const {
    if (!registered_) return false;
    Duration early = opts_.polling_interval + opts_.polling_interval / 2;
    Duration after = std::max(opts_.heartbeat_interval - early, opts_.heartbeat_interval / 2);
    return elapsed(registry_renewed_at_, now) >= after;
  }

  // The worker's heartbeat in the registry, unless a claim renewed it within the last
  // heartbeat_interval, and with `jobs_due` the heartbeat of its Running jobs.
  void heartbeat(TimePoint now, bool jobs_due) {
    bool registry_due;
    {
      // Counted from the try, successful or not: a database that is down is tried again a
      // heartbeat_interval later, not at every tick.
      std::lock_guard lock(mu_);
      registry_due = elapsed(registry_renewed_at_, now) >= opts_.heartbeat_interval;
      if (registry_due) registry_renewed_at_ = now;
    }
    if (!registry_due && !jobs_due) return;
    // A heartbeat that fails means the database was out of reach for this worker, and likely
    // for the others too: their heartbeats lapsed through no fault of theirs. This worker's
    // rescuer holds off for one threshold after any failed heartbeat, so that the others can
    // renew theirs before anything of theirs is taken for an orphan.
    bool ok = duty(heartbeats_on_, "heartbeats", &heartbeat_failures_, [&] {
      if (registry_due) store_->worker_heartbeat(worker_id_, now);
      if (!jobs_due) return;
      std::uint64_t seen_seq;
      bool claim_before;
      {
        std::lock_guard lock(mu_);
        if (running_.empty()) return;
        seen_seq = claim_seq_;
        claim_before = claims_in_flight_ > 0;
      }
      std::vector<HeldJob> held;
      {
        std::lock_guard rows(rows_mu_);
        held = store_->job_heartbeat(worker_id_, now);
      }
      std::vector<HeldJob> phantoms;
      {
        std::lock_guard lock(mu_);
        // Held in the database but not here: a claim that committed although its reply was
        // lost (the connection died after COMMIT). Judged only when no claim was under way
        // during the query, so that a claim whose jobs are not yet in running_ is not taken
        // for one.
        if (!claim_before && claims_in_flight_ == 0) {
          for (const auto& h : held) {
            if (!running_.contains({h.id, h.attempt})) phantoms.push_back(h);
          }
        }
        note_held_locked(held, seen_seq);
      }
      for (const auto& h : phantoms) release_phantom(h);
    });
    if (!ok) rescue_hold_until_ = saturating_add(now, opts_.orphaned_job_threshold);
  }

  // Gives back a job that the database says this worker holds but that it never received. The
  // release is fenced like any outcome, so a job that finished meanwhile is left alone.
  void release_phantom(const HeldJob& h) {
    std::optional<JobRecord> job = store_->job_get(h.id);
    if (!job || job->status != JobStatus::kRunning || job->lease != h.attempt ||
        job->worker_id != worker_id_) {
      return;
    }
    log::job(spdlog::level::warn, job->id, job->job_type, job->attempt,
             "claimed by worker {} but never received; giving it back", worker_id_);
    release(job->id, job->job_type, job->lease, job->attempt, job->run_at, job->queue);
  }

  // Compares the heartbeat's answer with running_: a job missing from it was rescued elsewhere
  // or cancelled; one flagged cancel_requested is asked to stop.
  void note_held_locked(const std::vector<HeldJob>& held, std::uint64_t seen_seq) {
    for (auto& [key, slot] : running_) {
      // Claimed after the query, given up, or finishing (its outcome may have been stored just
      // before the query, so its absence means nothing; the outcome write is fenced anyway).
      if (slot.claim_seq > seen_seq || slot.abandoned || slot.finishing) continue;
      auto it = std::find_if(held.begin(), held.end(), [&](const HeldJob& h) {
        return h.id == key.first && h.attempt == slot.lease;
      });
      if (it == held.end()) {
        if (!slot.lost) {
          // Rescued elsewhere (our lease lapsed) or cancelled while Pending: whatever the
          // handler does now cannot be stored, so tell it to stop.
          slot.lost = true;
          slot.stop.request_stop();
          log::job(spdlog::level::warn, key.first, slot.job_type, slot.attempt,
                   "no longer worker {}'s; stopping its handler", worker_id_);
        }
      } else if (it->cancel_requested && !slot.cancel) {
        slot.cancel = true;
        slot.stop.request_stop();
      }
    }
  }

  void check_timeouts(TimePoint now) {
    struct Expired {
      JobId id;
      std::string job_type;
      int lease, attempt, max_attempts;
      Duration timeout;
      std::string queue;
    };
    std::vector<Expired> expired;
    {
      std::lock_guard lock(mu_);
      for (auto& [key, slot] : running_) {
        if (!slot.timeout || !slot.context || slot.abandoned) continue;
        TimePoint deadline = saturating_add(slot.claimed_at, *slot.timeout);
        if (!slot.timed_out && now >= deadline) {
          slot.timed_out = true;
          slot.stop.request_stop();
        }
        if (slot.timed_out && now >= saturating_add(deadline, opts_.timeout_grace)) {
          // The handler ignored its stop token: fail the attempt without it. Its thread stays
          // busy until it returns (threads cannot be killed); its late outcome is fenced out.
          slot.abandoned = true;
          expired.push_back({key.first, slot.job_type, slot.lease, slot.attempt, slot.max_attempts,
                             *slot.timeout, slot.queue});
        }
      }
    }
    for (const auto& e : expired) {
      JobFinishParams fin;
      fin.id = e.id;
      fin.attempt = e.lease;
      fin.worker_id = worker_id_;
      fin.now = now;
      fin.error_message = "timed out after " + format_timespan(e.timeout) +
                          " and did not stop within the grace period";
      JobEvent::Kind kind = JobEvent::Kind::kFailed;
      if (e.attempt >= e.max_attempts) {
        fin.status = JobStatus::kFailed;
      } else {
        fin.status = JobStatus::kPending;
        fin.run_at =
            saturating_add(now, runtime::retry_delay(e.attempt, opts_.retry_base_delay,
                                                     opts_.retry_max_delay, unit_random()));
        kind = JobEvent::Kind::kRetryScheduled;
      }
      finish_now(fin, {kind, e.id, e.job_type, e.attempt, *fin.error_message, e.queue});
    }
  }

  JobRescueParams rescue_params(TimePoint now) const {
    JobRescueParams p;
    p.now = now;
    p.stale_before = saturating_sub(now, opts_.orphaned_job_threshold);
    p.default_max_attempts = opts_.default_max_attempts;
    p.poison_limit = opts_.poison_job_rescues;
    return p;
  }

  void rescue(TimePoint now) {
    if (now < rescue_hold_until_) return;
    duty(rescue_on_, "orphan rescue", [&] {
      int n = store_->job_rescue(rescue_params(now));
      if (n > 0) {
        spdlog::warn("worker {}: rescued {} orphaned job(s)", worker_id_, n);
        emit({JobEvent::Kind::kRescued, JobId(), {}, n, {}});
      }
    });
  }

  void prune(TimePoint now) {
    duty(prune_on_, "pruning", [&] {
      const std::pair<JobStatus, Duration> rules[] = {
          {JobStatus::kCompleted, opts_.completed_jobs_retention},
          {JobStatus::kFailed, opts_.failed_jobs_retention},
          {JobStatus::kCancelled, opts_.cancelled_jobs_retention}};
      for (const auto& [status, keep] : rules) {
        if (keep.count() <= 0) continue;
        // Bounded batches, and at most ten per tick: the rest waits for the next one.
        for (int i = 0; i < 10; ++i) {
          if (store_->job_prune(status, saturating_sub(now, keep), kPruneBatch) < kPruneBatch)
            break;
        }
      }
    });
  }

  // Messaging turned off leaves the outbox triggers behind, and job_outbox would grow without
  // bound: a worker that is not a relay drops them (and empties the outbox) when no live worker
  // relays. A relay that starts meanwhile installs them again (relay_loop).
  void drop_unrelayed_outbox(TimePoint now) {
    if (relaying()) return;
    duty(outbox_check_on_, "outbox check", [&] {
      const OutboxState state = store_->outbox_state();
      if (!state.enabled) return;
      for (const WorkerRecord& w : store_->worker_list()) {
        if (w.relay && elapsed(w.heartbeat_at, now) <= opts_.orphaned_job_threshold) return;
      }
      store_->outbox_disable();
      spdlog::warn(
          "worker {}: no live worker relays messages: the outbox triggers are dropped and its {} "
          "row(s) deleted (a worker with messaging installs them again when it starts)",
          worker_id_, state.rows);
    });
  }

  [[nodiscard]] bool relaying() const { return mq_ && opts_.messaging->relay; }

  // At start: give back at once the jobs of workers whose process is provably dead (the same
  // boot, PID namespace and pid, but not the same process: runtime/worker_identity.h), then
  // forget the workers silent for a threshold, and register this process. Any other worker may
  // still be alive, whatever its name, and keeps its jobs and its row while its heartbeat is
  // fresh; the rescuer takes its jobs once their heartbeats are older than the threshold.
  void recover_at_start() {
    // Before any job is given back: the command processes of this host's dead workers are gone.
    runtime::wait_for_orphaned_commands();
    TimePoint now = clock_.now();
    WorkerRecord me = runtime::this_process();
    duty(heartbeats_on_, "worker registry", [&] {
      JobRescueParams gone = rescue_params(now);
      for (const WorkerRecord& w : store_->worker_list()) {
        if (runtime::provably_dead(w, me)) {
          int n = store_->job_release_worker(w.id, gone);
          store_->worker_remove(w.id);
          spdlog::info("worker {}: previous worker {} is gone; {} of its job(s) returned",
                       worker_id_, w.id, n);
        } else if (!opts_.worker_name.empty() && w.name == opts_.worker_name &&
                   w.heartbeat_at >= gone.stale_before) {
          // Replicas started from one configuration: both run, each under its own id.
          spdlog::warn(
              "worker {}: worker {} (host {}, pid {}) has the same WorkerName '{}' and may be "
              "running; both keep their own jobs. Give each worker its own WorkerName",
              worker_id_, w.id, w.host, w.pid, opts_.worker_name);
        }
      }
      store_->worker_prune(gone.stale_before, now);
      me.id = worker_id_;
      me.name =
          opts_.worker_name.empty() ? me.host + ":" + std::to_string(me.pid) : opts_.worker_name;
      me.started_at = now;
      me.heartbeat_at = now;
      if (!opts_.claim_unhandled_types) me.job_types = job_types_;
      me.relay = relaying();
      store_->worker_register(me);
      registered_ = true;
      std::lock_guard lock(mu_);
      registry_renewed_at_ = now;
    });
  }

  static constexpr int kPruneBatch = 1000;
  static constexpr std::size_t kRelayBatch = 32;

  void emit(const JobEvent& e) {
    if (e.kind != JobEvent::Kind::kRescued) {
      log::job(spdlog::level::debug, e.id, e.job_type, e.attempt, "{}{}{}", event_name(e.kind),
               e.error.empty() ? "" : ": ", e.error);
    }
    if (!opts_.on_event) return;
    try {
      opts_.on_event(e);
    } catch (const std::exception& ex) {
      spdlog::warn("on_event callback threw: {}", ex.what());
    }
  }

  static const char* event_name(JobEvent::Kind k) {
    switch (k) {
      case JobEvent::Kind::kStarted:
        return "started";
      case JobEvent::Kind::kCompleted:
        return "completed";
      case JobEvent::Kind::kRetryScheduled:
        return "failed, retry scheduled";
      case JobEvent::Kind::kFailed:
        return "failed";
      case JobEvent::Kind::kReleased:
        return "released";
      case JobEvent::Kind::kFenced:
        return "outcome refused (no longer this attempt's)";
      case JobEvent::Kind::kCancelled:
        return "cancelled";
      case JobEvent::Kind::kRescued:
        return "rescued";
      case JobEvent::Kind::kSnoozed:
        return "snoozed";
    }
    return "?";
  }

  bool shutting_down() {
    std::lock_guard lock(mu_);
    return stopping_;
  }

  double unit_random() {
    std::lock_guard lock(mu_);
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  }

  const std::shared_ptr<Store> store_;
  Clock& clock_;
  const HandlerRegistry handlers_;
  const WorkerOptions opts_;
  const std::string worker_id_;
  const int max_;
  const int capacity_;  // max_ + prefetch_jobs: jobs held, running or waiting to
  // The claims of a round, limited queues first; the vector is fixed, the counts in it are
  // guarded by mu_.
  std::vector<ClaimTarget> targets_;
  const std::vector<std::string> job_types_;  // the handlers' types, sorted
  int subscription_ = 0;
  int cancel_subscription_ = 0;
  // Maintenance duties; each turns itself off if the backend lacks it. Maintenance thread only
  // (and start(), before that thread exists).
  bool heartbeats_on_ = true;
  bool rescue_on_ = true;
  bool prune_on_ = true;
  bool outbox_check_on_ = true;
  // Held around the heartbeat of this worker's jobs and the completer's batch of outcomes.
  // Both write many of the same rows, in one statement or transaction each, from two
  // connections; on PostgreSQL row locks taken in two orders deadlock (a 10M-history
  // burn-down logged "deadlock detected" in job_finish_many, stored on the retry after the 1 s
  // deadlock_timeout). Locking them in one order in SQL (a CTE with ORDER BY id FOR UPDATE)
  // slowed a burn-down with a local queue in a diagnostic run (16k against 22k jobs/s; that
  // build is not committed); a heartbeat every few seconds that waits for one batch costs
  // little. Other writers of Running rows never hold several at once while waiting (the
  // rescuer skips locked rows; cancel and single outcomes change one row).
  std::mutex rows_mu_;
  bool registered_ = false;  // written before the threads start
  // When this worker's registry heartbeat was last renewed by a claim, or tried by the
  // maintenance loop; guarded by mu_.
  TimePoint registry_renewed_at_{};
  TimePoint pool_started_at_;  // set before the maintenance thread starts

  std::mutex mu_;
  std::condition_variable cv_;             // producer: wake-up, free slot, stop
  std::condition_variable pool_cv_;        // executors: work queued, pool stop
  std::condition_variable idle_cv_;        // a job finished
  std::condition_variable flusher_cv_;     // flusher: pool stop
  std::condition_variable completer_cv_;   // completer: outcomes queued, stop
  bool completer_stop_ = false;            // guarded by mu_
  std::deque<Outcome> outcomes_;           // waiting for the completer; guarded by mu_
  int finishing_ = 0;                      // slots with finishing set; guarded by mu_
  bool stopping_ = false;                  // no claim starts; guarded by mu_
  bool draining_ = false;                  // and no attempt starts; guarded by mu_
  bool stopped_ = false;                   // guarded by mu_
  bool pool_stop_ = false;                 // guarded by mu_
  bool wake_ = false;                      // guarded by mu_
  bool heartbeat_now_ = false;             // a cancel() in this process; guarded by mu_
  std::uint64_t claim_seq_ = 0;            // claims made so far; guarded by mu_
  int claims_in_flight_ = 0;               // job_claim calls under way; guarded by mu_
  long claim_failures_ = 0;                // failed claims in a row; producer thread only
  long heartbeat_failures_ = 0;            // failed heartbeats in a row; maintenance thread
  std::unique_ptr<messaging::JobQueue> mq_;  // the messaging transport, if configured
  std::thread relay_, consumer_;
  TimePoint stop_deadline_;                // set by stop(); guarded by mu_
  TimePoint rescue_hold_until_;            // maintenance thread only
  TimePoint next_due_ = TimePoint::max();  // guarded by mu_
  TimePoint poll_at_ = TimePoint::max();   // when idle targets look again; guarded by mu_
  // Claimed and not finished, by (job, lease): a job rescued from this worker and claimed by
  // it again has two slots while the first handler winds down. Guarded by mu_.
  std::map<std::pair<JobId, int>, Slot> running_;
  std::deque<JobRecord> queue_;                  // claimed, waiting for an executor; guarded by mu_
  std::mt19937_64 rng_{std::random_device{}()};  // guarded by mu_
  std::vector<std::thread> pool_;
  std::thread producer_;
  std::thread flusher_;
  std::thread completer_;
  std::unique_ptr<runtime::Scheduler> scheduler_;
};

JobsWorker::JobsWorker(std::shared_ptr<Store> store, HandlerRegistry handlers,
                       WorkerOptions options) {
  if (!store) throw Error(ErrorCode::kInvalidArgument, "JobsWorker needs a store");
  if (options.polling_interval.count() <= 0) {
    throw Error(ErrorCode::kInvalidArgument, "polling_interval must be greater than zero");
  }
  if (options.prefetch_jobs < 0) {
    throw Error(ErrorCode::kInvalidArgument, "prefetch_jobs must not be negative");
  }
  if (options.default_max_attempts < 1) {
    throw Error(ErrorCode::kInvalidArgument, "default_max_attempts must be at least 1");
  }
  // Stored in the workers table and in every job it claims (store/text_rules.h).
  check_identifier("worker_name", options.worker_name, kMaxWorkerNameBytes, true);
  check_durations(options);
  for (const auto& [queue, max_held] : options.queue_limits) {
    if (max_held < 0) {
      throw Error(ErrorCode::kInvalidArgument,
                  "queue_limits: the limit of queue '" + queue + "' must not be negative");
    }
    // Why: see claim_targets().
    if (options.queues.empty()) {
      throw Error(ErrorCode::kInvalidArgument,
                  "queue_limits needs queues: list every queue this worker serves, the limited "
                  "ones too (a worker that serves every queue cannot keep a limit)");
    }
    if (std::find(options.queues.begin(), options.queues.end(), queue) == options.queues.end()) {
      throw Error(ErrorCode::kInvalidArgument, "queue_limits names queue '" + queue +
                                                   "', which is not one of this worker's queues");
    }
  }
  impl_ = std::make_unique<Impl>(std::move(store), std::move(handlers), std::move(options));
}

JobsWorker::~JobsWorker() = default;

void JobsWorker::start() { impl_->start(); }
void JobsWorker::stop() { impl_->stop(); }

void JobsWorker::run_until_signal() {
  // As `ergon worker` (docs/cli.md): a hang-up (the terminal or ssh session closed) stops the
  // worker gracefully instead of killing it with its jobs Running, SIGUSR1 logs a status line,
  // and SIGPIPE (stdout or stderr closed by its reader) is swallowed: a write fails with EPIPE
  // instead of killing the process.
  std::signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  for (const int sig : {SIGINT, SIGTERM, SIGHUP, SIGUSR1}) sigaddset(&set, sig);
  // Block before start(): threads inherit the mask, so the signal can only reach sigwait.
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  impl_->start();
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig == SIGUSR1) {
      spdlog::info("worker {}: running {} of at most {} job(s)", worker_id(), running_jobs(),
                   max_concurrent_jobs());
      continue;
    }
    spdlog::info("received SIG{}, stopping gracefully", ::sigabbrev_np(sig));
    break;
  }
  impl_->stop();
}

const std::string& JobsWorker::worker_id() const { return impl_->worker_id(); }
int JobsWorker::max_concurrent_jobs() const { return impl_->max_concurrent_jobs(); }
std::size_t JobsWorker::running_jobs() const { return impl_->running_jobs(); }
std::size_t JobsWorker::TEST_claim_once() { return impl_->claim_once(); }
void JobsWorker::TEST_wait_idle() { impl_->wait_idle(); }
void JobsWorker::TEST_wait_quiet() { impl_->wait_quiet(); }

}  // namespace ergon
