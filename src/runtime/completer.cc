#include "runtime/completer.h"

#include <spdlog/spdlog.h>

#include "core/log.h"

namespace ergon::runtime {
namespace {

bool is_outage(const std::exception& e) {
  const auto* err = dynamic_cast<const Error*>(&e);
  return err != nullptr && err->code() == ErrorCode::kStore;
}

// Back-off between tries of a store that is down: 50 ms doubling to 800 ms, then every second.
// Real time, not the worker's clock: the database comes back in real time.
void pause_before_retry(int tries) {
  std::this_thread::sleep_for(std::chrono::milliseconds(tries < 5 ? 50 << tries : 1000));
}

}  // namespace

FinishedAttempt finished_attempt(const JobRecord& job, const Outcome& o, std::string_view worker_id,
                                 TimePoint now, std::optional<Progress> progress) {
  JobEvent event{o.event, job.id, job.job_type, job.attempt, o.event_error, job.queue};
  if (o.status == JobStatus::kPending && !o.keep_run_at) event.run_at = o.run_at;
  FinishedAttempt a{{job.id, job.lease}, job.attempt, std::nullopt, event};
  if (o.write) {
    a.fin = finish_params(o, job.id, job.lease, worker_id, now);
    if (progress) {
      a.fin->progress_message = std::move(progress->message);
      a.fin->progress_percent = progress->percent;
    }
  }
  return a;
}

void CompleterOptions::validate() const {
  if (max_batch < 1) throw Error(ErrorCode::kInvalidArgument, "max_batch must be at least 1");
}

Completer::Completer(Store& store, std::string worker_id, JobSlots& slots, const Events& events,
                     messaging::JobQueue* queue, CompleterOptions options)
    : Service(store),
      worker_id_(std::move(worker_id)),
      slots_(slots),
      events_(events),
      queue_(queue),
      options_(validated(std::move(options))) {}

Completer::~Completer() { stop(); }

void Completer::enqueue(FinishedAttempt attempt) {
  std::lock_guard lock(mu_);
  waiting_.push_back(std::move(attempt));
  cv_.notify_all();
}

void Completer::loop() {
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stop_requested() || !waiting_.empty(); });
    if (waiting_.empty()) return;  // stopping, and everything stored
    lock.unlock();
    run_once();
    lock.lock();
  }
}

std::size_t Completer::run_once() {
  std::vector<FinishedAttempt> batch;
  {
    std::lock_guard lock(mu_);
    while (!waiting_.empty() && batch.size() < options_.max_batch) {
      batch.push_back(std::move(waiting_.front()));
      waiting_.pop_front();
    }
  }
  if (batch.empty()) return 0;
  std::vector<char> settled = store_batch(batch);
  std::vector<std::pair<SlotKey, bool>> done;
  done.reserve(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) done.emplace_back(batch[i].key, settled[i] != 0);
  for (const auto& m : slots_.settle(done)) remove_message(m);
  return batch.size();
}

// Stores a batch and reports each outcome; returns, per outcome, whether it is settled (stored,
// or fenced out because the job is no longer ours). While the database is down (kStore) the
// whole batch is retried as finish_now retries one outcome; any other error sends the outcomes
// one by one through finish_now, so one bad outcome cannot hold back the others.
std::vector<char> Completer::store_batch(std::vector<FinishedAttempt>& batch) {
  std::vector<char> settled(batch.size(), 1);
  std::vector<JobFinishParams> fins;
  std::vector<std::size_t> at;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (batch[i].fin) {
      fins.push_back(*batch[i].fin);
      at.push_back(i);
    }
  }
  auto view = [](const FinishedAttempt& a) { return a.event->view(a.key.first, a.attempt); };
  if (fins.size() == 1) {
    // Alone: the single-statement path (one round trip instead of BEGIN, UPDATE, COMMIT).
    settled[at[0]] = finish_now(fins[0], view(batch[at[0]]));
    batch[at[0]].event.reset();  // reported by finish_now
  } else if (!fins.empty()) {
    bool gave_up = false;
    std::optional<std::vector<bool>> stored = finish_many(fins, gave_up);
    for (std::size_t k = 0; k < at.size(); ++k) {
      FinishedAttempt& a = batch[at[k]];
      if (stored) {
        if (!(*stored)[k]) a.event->kind = JobEvent::Kind::kFenced;
      } else if (gave_up) {
        settled[at[k]] = 0;
        a.event.reset();
      } else {
        settled[at[k]] = finish_now(fins[k], view(a));
        a.event.reset();
      }
    }
  }
  for (const auto& a : batch) {
    if (a.event) events_.emit(view(a));
  }
  // JobRunner::wait in this process looks again, once for the batch (finish_now told it of a
  // lone outcome).
  for (std::size_t k = 0; fins.size() > 1 && k < at.size(); ++k) {
    if (settled[at[k]] && is_final(fins[k].status)) {
      store_.finish_notifier().notify(clock_.now());
      break;
    }
  }
  return settled;
}

// nullopt: not stored, either because of an error other than an outage (the caller stores the
// outcomes one by one) or, with `gave_up`, because the stop's grace passed during an outage.
std::optional<std::vector<bool>> Completer::finish_many(const std::vector<JobFinishParams>& fins,
                                                        bool& gave_up) {
  for (int i = 0;; ++i) {
    try {
      std::lock_guard rows(rows_mu_);
      return store_.job_finish_many(fins);
    } catch (const std::exception& e) {
      if (!is_outage(e)) return std::nullopt;
      if (slots_.past_stop_deadline(clock_.now())) {
        spdlog::error("worker {}: {} outcome(s) not stored, left for orphan rescue: {}", worker_id_,
                      fins.size(), e.what());
        gave_up = true;
        return std::nullopt;
      }
      if (i < 5 || i % 30 == 0) {
        spdlog::warn("worker {}: storing {} outcome(s) failed (try {}), retrying: {}", worker_id_,
                     fins.size(), i + 1, e.what());
      }
      pause_before_retry(i);
    }
  }
}

// While the database is down (ErrorCode::kStore: lost connection, server restart, busy file)
// the worker keeps trying with back-off up to a second, for as long as it runs: the job stays
// Running under this worker, its heartbeat resumes with the database, and the outcome lands
// then, so an outage neither loses the result nor re-runs the job. Any other error is tried
// five times. A stopping worker gives up once its shutdown grace has passed; the job is then
// left Running for orphan rescue.
bool Completer::finish_now(const JobFinishParams& fin, JobEvent event) {
  for (int i = 0;; ++i) {
    try {
      if (!store_.job_finish(fin)) {
        event.kind = JobEvent::Kind::kFenced;
      } else if (is_final(fin.status)) {
        store_.finish_notifier().notify(clock_.now());
      }
      break;
    } catch (const std::exception& e) {
      if ((!is_outage(e) && i >= 4) || slots_.past_stop_deadline(clock_.now())) {
        log::job(spdlog::level::err, fin.id, event.job_type, event.attempt,
                 "outcome not stored, left for orphan rescue: {}", e.what());
        return false;
      }
      if (i < 5 || i % 30 == 0) {
        log::job(spdlog::level::warn, fin.id, event.job_type, event.attempt,
                 "storing the outcome failed (try {}), retrying: {}", i + 1, e.what());
      }
      pause_before_retry(i);
    }
  }
  events_.emit(event);
  return true;
}

bool Completer::release(const JobId& id, std::string_view job_type, int lease, int attempt,
                        TimePoint run_at, std::string_view queue) {
  return finish_now(finish_params(released(run_at), id, lease, worker_id_, clock_.now()),
                    {JobEvent::Kind::kReleased, id, job_type, attempt, {}, queue});
}

void Completer::remove_message(const JobSlots::SettledMessage& m) {
  try {
    queue_->remove(m.message);
  } catch (const std::exception& e) {
    // It reappears after its visibility timeout; the consumer then finds the job finished.
    log::job(spdlog::level::warn, m.message.job_id, m.job_type, m.attempt,
             "worker {} could not remove its message: {}", worker_id_, e.what());
  }
}

}  // namespace ergon::runtime
