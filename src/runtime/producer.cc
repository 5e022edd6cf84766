#include "runtime/producer.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "ergon/time_range.h"

namespace ergon::runtime {

void ProducerOptions::validate() const {
  if (polling_interval.count() <= 0) {
    throw Error(ErrorCode::kInvalidArgument, "polling_interval must be greater than zero");
  }
}

Producer::Producer(Store& store, const ClaimPolicy& policy, JobSlots& slots,
                   Registration& registration, ProducerOptions options)
    : Service(store),
      policy_(policy),
      slots_(slots),
      registration_(registration),
      options_(validated(std::move(options))),
      claim_failures_("worker " + policy.worker_id() + ": claiming jobs", spdlog::level::err),
      more_(policy.targets().size(), 1) {
  subscription_ = store_.notifier().subscribe([this](TimePoint due) { on_notify(due); });
}

Producer::~Producer() {
  stop();
  store_.notifier().unsubscribe(subscription_);
}

void Producer::poke() { wake(); }

void Producer::on_notify(TimePoint due) {
  std::lock_guard lock(mu_);
  if (due <= clock_.now()) {
    wake_ = true;
  } else {
    next_due_ = std::min(next_due_, due);
  }
  cv_.notify_all();
}

// Some target may have jobs and has room for them.
bool Producer::claimable_locked() const {
  for (std::size_t i = 0; i < more_.size(); ++i) {
    if (more_[i] && slots_.room(i) > 0) return true;
  }
  return false;
}

// Every target may have jobs (a wake-up, a due time, a poll). The poll deadline starts again
// when some target next finds fewer jobs than it asked for.
void Producer::look_again_locked() {
  std::fill(more_.begin(), more_.end(), 1);
  poll_at_ = TimePoint::max();
}

// Takes in the wake-ups: a notify for a job due now, or a remembered due time that has passed,
// makes every target look again. A claim after this sees every job due by `now`, so a
// remembered due time up to `now` is served by it; a later one stays remembered.
void Producer::note_wakeups_locked(TimePoint now) {
  if (wake_ || next_due_ <= now) look_again_locked();
  wake_ = false;  // a notify from here on means "look again"
  if (next_due_ <= now) next_due_ = TimePoint::max();
}

std::size_t Producer::run_once() { return claim_round(true); }

// One claim for each target that may have jobs and has room, each for at most that room; the
// claimed jobs join the local queue. `all`: every target may have jobs. The limited queues are
// claimed first: they take at most their limits, and a slot that frees goes to a limited queue
// before the unlimited rest, which could otherwise keep it from ever getting one. A priority
// does not reach across targets; within one the usual order holds.
std::size_t Producer::claim_round(bool all) {
  TimePoint now = clock_.now();
  std::size_t claimed = 0;
  {
    std::lock_guard lock(mu_);
    if (all) look_again_locked();
    note_wakeups_locked(now);
  }
  const std::vector<ClaimTarget>& targets = policy_.targets();
  for (std::size_t i = 0; i < targets.size(); ++i) {
    int room;
    {
      // In one hold with the check of `more`, so that wait_quiet() never sees this target
      // settled while a claim for it is about to start.
      std::lock_guard lock(mu_);
      if (!more_[i]) continue;
      room = slots_.begin_claim(i);
    }
    if (room < 0) break;  // stopping: stop() waits for the claims counted before
    if (room == 0) continue;
    bool renew = registration_.claim_should_renew(now);
    std::vector<JobRecord> jobs;
    try {
      jobs = store_.job_claim(policy_.params(targets[i], room, now, renew));
    } catch (...) {
      // The claim may still have committed (the connection died after COMMIT): the heartbeat
      // finds such jobs and gives them back. Jobs of earlier targets are in the pool already.
      slots_.abort_claim();
      throw;
    }
    if (renew) registration_.renewed_by_claim(now);
    std::vector<JobSlots::Claimed> admitted;
    admitted.reserve(jobs.size());
    for (auto& job : jobs) {
      SlotTerms terms = policy_.terms(job);
      admitted.push_back({std::move(job), terms, std::nullopt, {}});
    }
    const std::size_t n = admitted.size();
    slots_.end_claim(std::move(admitted), now);
    {
      // Every place asked for was filled: more may be due. (Compared with the room at the
      // claim itself, not with the room now: a slot that frees in between would otherwise make
      // a full claim look partial, and the producer would sleep until the next poll with room
      // and jobs due.)
      std::lock_guard lock(mu_);
      more_[i] = static_cast<int>(n) == room;
    }
    cv_.notify_all();
    claimed += n;
  }
  return claimed;
}

void Producer::loop() {
  std::unique_lock lock(mu_);
  while (!stopping_locked()) {
    note_wakeups_locked(clock_.now());
    if (!claimable_locked()) {
      // Nothing to claim now: each target has no room (the pool is full, or its queue is at its
      // limit) or found fewer jobs than it asked for at its last claim. Sleep until a target
      // that may have jobs gets room (a slot frees), a job of this process is due (a notify,
      // or next_due_, which may move earlier while we sleep), or the polling interval passes
      // (jobs enqueued by other processes); the last two make every target look again. Each
      // is an event: a saturated worker does not spin. When every target is only waiting for
      // room, there is nothing to poll for.
      bool idle = std::any_of(more_.begin(), more_.end(), [](char more) { return !more; });
      if (idle && poll_at_ == TimePoint::max()) {
        poll_at_ = saturating_add(clock_.now(), options_.polling_interval);
      }
      auto deadline = [&] { return std::min(poll_at_, next_due_); };
      while (!stopping_locked() && !wake_ && !claimable_locked() && clock_.now() < deadline()) {
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
      claim_failures_.succeeded();
    } catch (const std::exception& e) {
      claim_failures_.failed(e.what());
      failed = true;
    }
    lock.lock();
    // The database failed: try again at the next poll (or wake-up), not at once.
    if (failed) {
      std::fill(more_.begin(), more_.end(), 0);
      cv_.notify_all();  // wait_quiet
    }
  }
}

void Producer::wait_quiet() {
  // A claim ends (notifying cv_) before the producer records whether its target has more, and
  // until it does the target still looks claimable if it has room; a producer that saw more to
  // claim checks again in the hold that counts its claim in. So once this holds it stays so
  // until the next wake-up.
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] {
    return slots_.snapshot().claims_in_flight == 0 && (stopping_locked() || !claimable_locked());
  });
}

}  // namespace ergon::runtime
