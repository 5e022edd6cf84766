#include "runtime/relay.h"

#include <spdlog/spdlog.h>

#include "ergon/time_range.h"

namespace ergon::runtime {

void RelayOptions::validate() const {
  check_duration(relay_interval, "relay_interval");
  check_duration(trigger_check_interval, "trigger_check_interval");
  if (max_batch < 1) throw Error(ErrorCode::kInvalidArgument, "max_batch must be at least 1");
}

Relay::Relay(Store& store, std::string worker_id, messaging::JobQueue& queue, RelayOptions options)
    : Service(store),
      worker_id_(std::move(worker_id)),
      queue_(queue),
      options_(validated(std::move(options))),
      next_trigger_check_(saturating_add(clock_.now(), options_.trigger_check_interval)),
      failures_("worker " + worker_id_ + ": relay", spdlog::level::err) {}

Relay::~Relay() { stop(); }

void Relay::start() {
  next_trigger_check_ = saturating_add(clock_.now(), options_.trigger_check_interval);
  Service::start();
}

std::size_t Relay::run_once() {
  // A worker that saw no live relay may have dropped the triggers while this one was starting
  // (OutboxCheck): put them back.
  if (clock_.now() >= next_trigger_check_) {
    next_trigger_check_ = saturating_add(clock_.now(), options_.trigger_check_interval);
    if (!store_.outbox_state().enabled) {
      store_.outbox_enable();
      spdlog::warn("worker {}: relay: the outbox triggers were gone; installed again", worker_id_);
    }
  }
  std::vector<OutboxRow> rows = store_.outbox_peek(options_.max_batch);
  std::vector<std::int64_t> done;
  TimePoint now = clock_.now();
  for (const auto& row : rows) {
    queue_.publish(row.job_id, elapsed(now, row.due_at));
    done.push_back(row.id);
  }
  store_.outbox_remove(done);
  return done.size();
}

void Relay::loop() {
  std::unique_lock lock(mu_);
  while (!stop_requested()) {
    lock.unlock();
    std::size_t sent = 0;
    try {
      sent = run_once();
      failures_.succeeded();
    } catch (const std::exception& e) {
      failures_.failed(e.what());
    }
    lock.lock();
    if (sent == static_cast<std::size_t>(options_.max_batch)) continue;  // there may be more
    TimePoint until = saturating_add(clock_.now(), options_.relay_interval);
    while (!stop_requested() && clock_.now() < until) clock_.wait_until(lock, cv_, until);
  }
}

OutboxCheck::OutboxCheck(Store& store, std::string worker_id, OutboxCheckOptions options)
    : store_(store),
      worker_id_(std::move(worker_id)),
      options_(options),
      duty_(worker_id_, "outbox check") {}

void OutboxCheck::run_once(TimePoint now) {
  if (options_.relaying) return;
  duty_.run([&] {
    const OutboxState state = store_.outbox_state();
    if (!state.enabled) return;
    for (const WorkerRecord& w : store_.worker_list()) {
      if (w.relay && elapsed(w.heartbeat_at, now) <= options_.live_threshold) return;
    }
    store_.outbox_disable();
    spdlog::warn(
        "worker {}: no live worker relays messages: the outbox triggers are dropped and its {} "
        "row(s) deleted (a worker with messaging installs them again when it starts)",
        worker_id_, state.rows);
  });
}

}  // namespace ergon::runtime
