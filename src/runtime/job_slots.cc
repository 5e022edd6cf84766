#include "runtime/job_slots.h"

#include <algorithm>

#include "runtime/service.h"

namespace ergon::runtime {

void SlotOptions::validate() const {
  if (max_concurrent_jobs < 1) {
    throw Error(ErrorCode::kInvalidArgument, "max_concurrent_jobs must be at least 1");
  }
  if (prefetch_jobs < 0) {
    throw Error(ErrorCode::kInvalidArgument, "prefetch_jobs must not be negative");
  }
  if (target_limits.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "a worker needs at least one claim target");
  }
}

JobSlots::JobSlots(SlotOptions options)
    : max_(validated(options).max_concurrent_jobs),
      prefetch_(options.prefetch_jobs),
      capacity_(max_ + prefetch_),
      limits_(std::move(options.target_limits)),
      held_(limits_.size(), 0) {}

void JobSlots::on_change(std::function<void()> listener) {
  listeners_.push_back(std::move(listener));
}

void JobSlots::notify() {
  for (const auto& listener : listeners_) listener();
}

int JobSlots::occupied_locked() const {
  int occupied = static_cast<int>(running_.size()) - finishing_;
  if (finishing_ > capacity_) occupied += finishing_ - capacity_;
  return occupied;
}

int JobSlots::room_locked() const {
  int room = capacity_ - occupied_locked();
  if (room <= 0) return 0;
  if (prefetch_ > 0 && room < (prefetch_ + 1) / 2) {
    int executing = static_cast<int>(running_.size() - queue_.size()) - finishing_;
    if (!queue_.empty() || executing >= max_) return 0;
  }
  return room;
}

int JobSlots::room() const {
  std::lock_guard lock(mu_);
  return room_locked();
}

int JobSlots::room_locked(std::size_t target) const {
  int room = room_locked();
  return limits_[target] < 0 ? room : std::min(room, limits_[target] - held_[target]);
}

int JobSlots::room(std::size_t target) const {
  std::lock_guard lock(mu_);
  return room_locked(target);
}

bool JobSlots::begin_claim() {
  std::lock_guard lock(mu_);
  if (stopping_) return false;
  ++claims_in_flight_;
  return true;
}

int JobSlots::begin_claim(std::size_t target) {
  std::lock_guard lock(mu_);
  if (stopping_) return -1;
  int room = room_locked(target);
  if (room > 0) ++claims_in_flight_;
  return std::max(room, 0);
}

void JobSlots::abort_claim() {
  {
    std::lock_guard lock(mu_);
    --claims_in_flight_;
    idle_cv_.notify_all();
  }
  notify();
}

void JobSlots::end_claim(std::vector<Claimed> jobs, TimePoint now) {
  {
    std::lock_guard lock(mu_);
    --claims_in_flight_;
    idle_cv_.notify_all();
    ++claim_seq_;
    for (auto& c : jobs) {
      Slot slot;
      slot.job_type = c.job.job_type;
      slot.attempt = c.job.attempt;
      slot.lease = c.job.lease;
      slot.max_attempts = c.terms.max_attempts;
      slot.claimed_at = now;
      slot.run_at = c.job.run_at;
      slot.timeout = c.terms.timeout;
      slot.queue = c.job.queue;
      slot.target = c.terms.target;
      slot.claim_seq = claim_seq_;
      if (slot.target >= 0) ++held_[slot.target];
      slot.message = std::move(c.message);
      slot.message_hidden_until = c.message_hidden_until;
      running_.emplace(SlotKey(c.job.id, c.job.lease), std::move(slot));
      queue_.push_back(std::move(c.job));
    }
    if (!jobs.empty()) work_cv_.notify_all();
  }
  notify();
}

JobSlots::Snapshot JobSlots::snapshot() const {
  std::lock_guard lock(mu_);
  return {running_.size(), claim_seq_, claims_in_flight_};
}

void JobSlots::mark_finishing_locked(Slot& slot) {
  slot.finishing = true;
  ++finishing_;
  if (slot.target >= 0) --held_[slot.target];
}

std::optional<JobSlots::Next> JobSlots::next(bool wait) {
  using Action = Next::Action;
  Next next;
  {
    std::unique_lock lock(mu_);
    if (wait) work_cv_.wait(lock, [&] { return pool_stop_ || !queue_.empty(); });
    if (queue_.empty()) return std::nullopt;  // stopped (or not waiting), nothing left
    next.job = std::move(queue_.front());
    queue_.pop_front();
    Slot& slot = running_.at({next.job.id, next.job.lease});
    if (draining_) {
      // Claimed but never started before the stop: given back untouched, unless the stop
      // gave it back already.
      next.action = slot.abandoned ? Action::kSkip : Action::kRelease;
    } else if (slot.lost || slot.cancel) {
      // Lost (rescued elsewhere: another worker may run it now) or cancelled while it waited:
      // never started. A lost job has nothing left to store here.
      next.action = slot.lost ? Action::kSkip : Action::kCancel;
    } else {
      next.stop = slot.stop.get_token();
      next.max_attempts = slot.max_attempts;
      return next;
    }
    mark_finishing_locked(slot);
  }
  notify();
  return next;
}

void JobSlots::started(const SlotKey& key, std::shared_ptr<AttemptContext> context, TimePoint now) {
  std::lock_guard lock(mu_);
  Slot& slot = running_.at(key);
  slot.claimed_at = now;
  slot.context = std::move(context);
}

JobSlots::Ended JobSlots::finish(const SlotKey& key) {
  Ended ended;
  {
    std::lock_guard lock(mu_);
    Slot& slot = running_.at(key);
    mark_finishing_locked(slot);
    ended.cancel = slot.cancel;
    if (slot.timed_out) ended.timed_out = slot.timeout;
  }
  notify();
  return ended;
}

void JobSlots::stop_pool() {
  std::lock_guard lock(mu_);
  pool_stop_ = true;
  work_cv_.notify_all();
}

std::vector<JobSlots::SettledMessage> JobSlots::settle(
    const std::vector<std::pair<SlotKey, bool>>& outcomes) {
  std::vector<SettledMessage> messages;
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, settled] : outcomes) {
      auto it = running_.find(key);
      if (it == running_.end()) continue;
      Slot& slot = it->second;
      // A message that brought a job is removed only once its outcome is in the store;
      // unsettled, it reappears after its visibility timeout and the job is looked at again.
      if (settled && slot.message) {
        messages.push_back({std::move(*slot.message), slot.job_type, slot.attempt});
      }
      if (slot.finishing) --finishing_;
      running_.erase(it);
    }
    idle_cv_.notify_all();
  }
  notify();
  return messages;
}

void JobSlots::close(TimePoint deadline) {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    stop_deadline_ = deadline;
  }
  notify();
}

bool JobSlots::stopping() const {
  std::lock_guard lock(mu_);
  return stopping_;
}

bool JobSlots::past_stop_deadline(TimePoint now) const {
  std::lock_guard lock(mu_);
  return stopping_ && now >= stop_deadline_;
}

void JobSlots::wait_claims_done() {
  std::unique_lock lock(mu_);
  idle_cv_.wait(lock, [&] { return claims_in_flight_ == 0; });
}

std::vector<JobRecord> JobSlots::drain() {
  std::vector<JobRecord> queued;
  {
    std::lock_guard lock(mu_);
    draining_ = true;
    // Handlers learn at once that we are shutting down; cooperative ones return early and
    // are released by their executor, the others get the grace to finish.
    for (auto& [key, slot] : running_) slot.stop.request_stop();
    // Jobs waiting in the local queue never started: they go back at once, at their old
    // place in the queue, without waiting for an executor.
    while (!queue_.empty()) {
      mark_finishing_locked(running_.at({queue_.front().id, queue_.front().lease}));
      queued.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    work_cv_.notify_all();
  }
  notify();
  return queued;
}

void JobSlots::wait_empty_until(Clock& clock, TimePoint deadline) {
  std::unique_lock lock(mu_);
  while (!running_.empty() && clock.now() < deadline) clock.wait_until(lock, idle_cv_, deadline);
}

std::vector<JobSlots::Abandoned> JobSlots::abandon_rest() {
  std::vector<Abandoned> out;
  std::lock_guard lock(mu_);
  for (auto& [key, slot] : running_) {
    // Skip attempts whose outcome is being stored right now.
    if (slot.finishing || slot.abandoned) continue;
    slot.abandoned = true;
    out.push_back({key.first, slot.job_type, slot.lease, slot.attempt, slot.run_at, slot.queue});
  }
  return out;
}

std::size_t JobSlots::size() const {
  std::lock_guard lock(mu_);
  return running_.size();
}

void JobSlots::wait_empty() {
  std::unique_lock lock(mu_);
  idle_cv_.wait(lock, [&] { return running_.empty(); });
}

}  // namespace ergon::runtime
