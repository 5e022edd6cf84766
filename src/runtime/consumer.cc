#include "runtime/consumer.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "ergon/time_range.h"

namespace ergon::runtime {

void ConsumerOptions::validate() const {
  check_duration(receive_interval, "receive_interval");
  if (max_receive < 1) throw Error(ErrorCode::kInvalidArgument, "max_receive must be at least 1");
}

Consumer::Consumer(Store& store, const ClaimPolicy& policy, JobSlots& slots,
                   messaging::JobQueue& queue, ConsumerOptions options)
    : Service(store),
      policy_(policy),
      slots_(slots),
      queue_(queue),
      options_(validated(std::move(options))),
      failures_("worker " + policy.worker_id() + ": consumer", spdlog::level::err) {}

Consumer::~Consumer() { stop(); }

void Consumer::poke() { wake(); }

std::size_t Consumer::run_once() {
  int free = slots_.room();
  if (free <= 0) return 0;
  std::vector<messaging::JobMessage> messages =
      queue_.receive(std::min(free, options_.max_receive));
  for (auto& m : messages) take(m);
  return messages.size();
}

void Consumer::loop() {
  std::unique_lock lock(mu_);
  while (!stopping_locked()) {
    if (slots_.room() <= 0) {
      cv_.wait(lock, [&] { return stopping_locked() || slots_.room() > 0; });
      continue;
    }
    lock.unlock();
    std::size_t received = 0;
    try {
      received = run_once();
      failures_.succeeded();
    } catch (const std::exception& e) {
      failures_.failed(e.what());
    }
    lock.lock();
    if (received > 0) continue;
    TimePoint until = saturating_add(clock_.now(), options_.receive_interval);
    while (!stopping_locked() && clock_.now() < until) clock_.wait_until(lock, cv_, until);
  }
}

void Consumer::take(messaging::JobMessage& m) {
  TimePoint now = clock_.now();
  // By id only from the served queues without a limit: a job of a limited queue waits for the
  // producer's claim, which keeps the limit (as a limited job type's does). With every served
  // queue limited there is no such claim (an empty filter would mean every queue).
  if (const ClaimTarget& rest = policy_.targets().back(); rest.max_held < 0) {
    // stop() waits for the claim, as for the producer's; once stopping, the message reappears
    // after its visibility timeout.
    if (!slots_.begin_claim()) return;
    std::optional<JobRecord> job;
    try {
      job = store_.job_claim_id(policy_.params(rest, 1, now, false), m.job_id);
    } catch (...) {
      slots_.abort_claim();
      throw;
    }
    std::vector<JobSlots::Claimed> admitted;
    if (job) {
      SlotTerms terms = policy_.terms(*job);
      admitted.push_back(
          {std::move(*job), terms, std::move(m), saturating_add(now, queue_.visibility_timeout())});
    }
    const bool claimed = !admitted.empty();
    slots_.end_claim(std::move(admitted), now);
    if (claimed) return;
  }
  // Not claimable. Pending: not due yet (hide the message until it is), or in a paused queue,
  // one this worker does not serve, or one with a limit here (hide it for a visibility timeout;
  // the polling claim takes a limited queue's job). Anything else (running elsewhere, finished,
  // deleted): the message has nothing left to trigger.
  std::optional<JobRecord> seen = store_.job_get(m.job_id);
  if (seen && seen->status == JobStatus::kPending) {
    queue_.postpone(m,
                    seen->run_at > now ? elapsed(now, seen->run_at) : queue_.visibility_timeout());
  } else {
    queue_.remove(m);
  }
}

}  // namespace ergon::runtime
