#include "runtime/heartbeat.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/log.h"
#include "runtime/command_lock.h"
#include "runtime/worker_identity.h"

namespace ergon::runtime {

Heartbeat::Heartbeat(Store& store, std::string worker_id, JobSlots& slots,
                     Registration& registration, Completer& completer, HeartbeatOptions options)
    : store_(store),
      worker_id_(std::move(worker_id)),
      slots_(slots),
      registration_(registration),
      completer_(completer),
      options_(std::move(options)),
      duty_(worker_id_, "heartbeats", /*counted=*/true) {}

// Any other worker may still be alive, whatever its name, and keeps its jobs and its row while
// its heartbeat is fresh; the rescuer takes its jobs once their heartbeats are older than the
// threshold.
void Heartbeat::recover_at_start(TimePoint now) {
  // Before any job is given back: the command processes of this host's dead workers are gone.
  wait_for_orphaned_commands();
  WorkerRecord me = this_process();
  duty_.run("worker registry", [&] {
    JobRescueParams gone = rescue_params(options_.recovery, now);
    for (const WorkerRecord& w : store_.worker_list()) {
      if (provably_dead(w, me)) {
        int n = store_.job_release_worker(w.id, gone);
        store_.worker_remove(w.id);
        spdlog::info("worker {}: previous worker {} is gone; {} of its job(s) returned", worker_id_,
                     w.id, n);
      } else if (!options_.worker_name.empty() && w.name == options_.worker_name &&
                 w.heartbeat_at >= gone.stale_before) {
        // Replicas started from one configuration: both run, each under its own id.
        spdlog::warn(
            "worker {}: worker {} (host {}, pid {}) has the same WorkerName '{}' and may be "
            "running; both keep their own jobs. Give each worker its own WorkerName",
            worker_id_, w.id, w.host, w.pid, options_.worker_name);
      }
    }
    store_.worker_prune(gone.stale_before, now);
    me.id = worker_id_;
    me.name = options_.worker_name.empty() ? me.host + ":" + std::to_string(me.pid)
                                           : options_.worker_name;
    me.started_at = now;
    me.heartbeat_at = now;
    if (options_.job_types) me.job_types = *options_.job_types;
    me.relay = options_.relay;
    store_.worker_register(me);
    registration_.registered(now);
  });
}

bool Heartbeat::run_once(TimePoint now, bool jobs_due) {
  bool registry_due = registration_.heartbeat_due(now);
  if (!registry_due && !jobs_due) return true;
  return duty_.run([&] {
    if (registry_due) store_.worker_heartbeat(worker_id_, now);
    if (!jobs_due) return;
    JobSlots::Snapshot before = slots_.snapshot();
    if (before.held == 0) return;
    std::vector<HeldJob> held;
    {
      // Not alongside a batch of the completer's: see Completer::rows_mutex().
      std::lock_guard rows(completer_.rows_mutex());
      held = store_.job_heartbeat(worker_id_, now);
    }
    // A job held in the database but not here is judged a phantom only when no claim was under
    // way during the query, so that a claim whose jobs are not yet in the slots is not taken for
    // one.
    bool judge = before.claims_in_flight == 0 && slots_.snapshot().claims_in_flight == 0;
    for (const auto& h : compare(held, before.claim_seq, judge)) release_phantom(h);
  });
}

// Compares the heartbeat's answer with the slots; returns the phantoms when `judge_phantoms`.
std::vector<HeldJob> Heartbeat::compare(const std::vector<HeldJob>& held, std::uint64_t seen_seq,
                                        bool judge_phantoms) {
  std::vector<SlotKey> keys;  // every slot, in order
  std::vector<std::tuple<JobId, std::string, int>> newly_lost;
  slots_.visit([&](const SlotKey& key, Slot& slot) {
    keys.push_back(key);
    // Claimed after the query, given up, or finishing (its outcome may have been stored just
    // before the query, so its absence means nothing; the outcome write is fenced anyway).
    if (slot.claim_seq > seen_seq || slot.abandoned || slot.finishing) return;
    auto it = std::find_if(held.begin(), held.end(), [&](const HeldJob& h) {
      return h.id == key.first && h.attempt == slot.lease;
    });
    if (it == held.end()) {
      if (!slot.lost) {
        // Rescued elsewhere (our lease lapsed) or cancelled while Pending: whatever the handler
        // does now cannot be stored, so tell it to stop.
        slot.lost = true;
        slot.stop.request_stop();
        newly_lost.emplace_back(key.first, slot.job_type, slot.attempt);
      }
    } else if (it->cancel_requested && !slot.cancel) {
      slot.cancel = true;
      slot.stop.request_stop();
    }
  });
  for (const auto& [id, job_type, attempt] : newly_lost) {
    log::job(spdlog::level::warn, id, job_type, attempt,
             "no longer worker {}'s; stopping its handler", worker_id_);
  }
  std::vector<HeldJob> phantoms;
  if (!judge_phantoms) return phantoms;
  for (const auto& h : held) {
    if (!std::binary_search(keys.begin(), keys.end(), SlotKey(h.id, h.attempt))) {
      phantoms.push_back(h);
    }
  }
  return phantoms;
}

// Gives back a job that the database says this worker holds but that it never received. The
// release is fenced like any outcome, so a job that finished meanwhile is left alone.
void Heartbeat::release_phantom(const HeldJob& h) {
  std::optional<JobRecord> job = store_.job_get(h.id);
  if (!job || job->status != JobStatus::kRunning || job->lease != h.attempt ||
      job->worker_id != worker_id_) {
    return;
  }
  log::job(spdlog::level::warn, job->id, job->job_type, job->attempt,
           "claimed by worker {} but never received; giving it back", worker_id_);
  completer_.release(job->id, job->job_type, job->lease, job->attempt, job->run_at, job->queue);
}

void Heartbeat::unregister() {
  if (!registration_.is_registered()) return;
  try {
    store_.worker_remove(worker_id_);
  } catch (const std::exception& e) {
    spdlog::warn("worker {}: could not unregister: {}", worker_id_, e.what());
  }
}

}  // namespace ergon::runtime
