#include "runtime/maintenance.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/log.h"
#include "ergon/time_range.h"
#include "runtime/outcome.h"

namespace ergon::runtime {

void MaintenanceOptions::validate() const {
  const std::pair<const char*, Duration> all[] = {
      {"progress_interval", progress_interval},
      {"heartbeat_interval", heartbeat_interval},
      {"orphaned_jobs_check_interval", orphaned_jobs_check_interval},
      {"orphaned_job_threshold", orphaned_job_threshold},
      {"prune_interval", prune_interval},
      {"timeout_grace", timeout_grace}};
  for (const auto& [name, d] : all) check_duration(d, name);
}

Maintenance::Maintenance(Store& store, std::string worker_id, JobSlots& slots,
                         Registration& registration, Completer& completer, MaintenanceDuties duties,
                         messaging::JobQueue* queue, MaintenanceOptions options)
    : Service(store),
      worker_id_(std::move(worker_id)),
      slots_(slots),
      registration_(registration),
      completer_(completer),
      duties_(duties),
      queue_(queue),
      options_(validated(std::move(options))) {
  schedule_from(clock_.now());
  subscription_ = store_.cancel_notifier().subscribe([this](TimePoint) { heartbeat_now(); });
}

Maintenance::~Maintenance() {
  stop();
  store_.cancel_notifier().unsubscribe(subscription_);
}

void Maintenance::schedule_from(TimePoint now) {
  next_heartbeat_ = now;
  next_rescue_ = now;
  next_prune_ = saturating_add(now, options_.prune_interval);
  next_outbox_check_ = saturating_add(now, options_.prune_interval);  // start() checked once
}

void Maintenance::start() {
  // Timed from here, in the starting thread, so that the schedule does not depend on when the
  // new thread gets to run.
  schedule_from(clock_.now());
  Service::start();
}

void Maintenance::heartbeat_now() {
  std::lock_guard lock(mu_);
  heartbeat_now_ = true;
  cv_.notify_all();
}

void Maintenance::run_once() {
  std::vector<std::shared_ptr<AttemptContext>> contexts;
  slots_.visit([&](const SlotKey&, Slot& slot) {
    if (slot.context) contexts.push_back(slot.context);
  });
  bool heartbeat_now;
  {
    std::lock_guard lock(mu_);
    heartbeat_now = std::exchange(heartbeat_now_, false);
  }
  for (auto& c : contexts) c->flush_if_due();
  TimePoint now = clock_.now();
  bool jobs_due = heartbeat_now || now >= next_heartbeat_;
  if (!duties_.heartbeat.run_once(now, jobs_due)) {
    duties_.rescuer.hold_until(saturating_add(now, options_.orphaned_job_threshold));
  }
  if (jobs_due) next_heartbeat_ = saturating_add(now, options_.heartbeat_interval);
  check_timeouts(now);
  extend_messages(now);
  if (now >= next_rescue_) {
    duties_.rescuer.run_once(now);
    next_rescue_ = saturating_add(now, options_.orphaned_jobs_check_interval);
  }
  if (now >= next_prune_) {
    duties_.pruner.run_once(now);
    next_prune_ = saturating_add(now, options_.prune_interval);
  }
  if (now >= next_outbox_check_) {
    duties_.outbox_check.run_once(now);
    next_outbox_check_ = saturating_add(now, options_.prune_interval);
  }
}

void Maintenance::loop() {
  std::unique_lock lock(mu_);
  while (!stop_requested()) {
    lock.unlock();
    run_once();
    lock.lock();
    TimePoint deadline = std::min({saturating_add(clock_.now(), options_.progress_interval),
                                   next_heartbeat_, registration_.next_heartbeat()});
    while (!stop_requested() && !heartbeat_now_ && clock_.now() < deadline) {
      clock_.wait_until(lock, cv_, deadline);
    }
  }
}

void Maintenance::check_timeouts(TimePoint now) {
  struct Expired {
    JobId id;
    std::string job_type;
    int lease, attempt, max_attempts;
    Duration timeout;
    std::string queue;
  };
  std::vector<Expired> expired;
  slots_.visit([&](const SlotKey& key, Slot& slot) {
    if (!slot.timeout || !slot.context || slot.abandoned) return;
    TimePoint deadline = saturating_add(slot.claimed_at, *slot.timeout);
    if (!slot.timed_out && now >= deadline) {
      slot.timed_out = true;
      slot.stop.request_stop();
    }
    if (slot.timed_out && now >= saturating_add(deadline, options_.timeout_grace)) {
      slot.abandoned = true;
      expired.push_back({key.first, slot.job_type, slot.lease, slot.attempt, slot.max_attempts,
                         *slot.timeout, slot.queue});
    }
  });
  for (const auto& e : expired) {
    OutcomeInput in;
    in.attempt = e.attempt;
    in.max_attempts = e.max_attempts;
    in.now = now;
    in.retry_base_delay = options_.retry_base_delay;
    in.retry_max_delay = options_.retry_max_delay;
    in.unit_random = unit_random();
    Outcome o = abandoned_after_timeout(e.timeout, in);
    completer_.finish_now(finish_params(o, e.id, e.lease, worker_id_, now),
                          {o.event, e.id, e.job_type, e.attempt, o.event_error, e.queue});
  }
}

// Keeps the messages of running jobs hidden: each is extended by a visibility timeout when less
// than half of its current one is left.
void Maintenance::extend_messages(TimePoint now) {
  if (!queue_) return;
  struct Due {
    SlotKey key;
    messaging::JobMessage m;
    std::string job_type;
    int attempt;
  };
  std::vector<Due> due;
  Duration vt = queue_->visibility_timeout();
  slots_.visit([&](const SlotKey& key, Slot& slot) {
    if (slot.message && elapsed(now, slot.message_hidden_until) < vt / 2) {
      due.push_back({key, *slot.message, slot.job_type, slot.attempt});
    }
  });
  for (auto& [key, m, job_type, attempt] : due) {
    try {
      queue_->postpone(m, vt);
    } catch (const std::exception& e) {
      log::job(spdlog::level::warn, key.first, job_type, attempt,
               "worker {} could not extend its message: {}", worker_id_, e.what());
      continue;
    }
    slots_.with_slot(key, [&](Slot& slot) {
      if (!slot.message) return;
      slot.message->receipt = m.receipt;
      slot.message_hidden_until = saturating_add(now, vt);
    });
  }
}

}  // namespace ergon::runtime
