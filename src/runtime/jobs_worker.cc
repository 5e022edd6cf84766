// The worker: a producer that claims, a pool that runs attempts, a flusher for throttled
// progress. See ergon/jobs_worker.h for the contract and ARCHITECTURE.md for the picture.
#include "ergon/jobs_worker.h"

#include <cxxabi.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <csignal>
#include <deque>
#include <map>
#include <random>
#include <thread>
#include <typeinfo>

#include "runtime/attempt_context.h"
#include "runtime/backoff.h"
#include "runtime/scheduler.h"
#include "store/store.h"

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
                 : 5 * static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))) {
    subscription_ = store_->notifier().subscribe([this](TimePoint due) { on_notify(due); });
  }

  ~Impl() {
    stop();
    store_->notifier().unsubscribe(subscription_);
  }

  void start() {
    std::lock_guard lock(mu_);
    if (producer_.joinable() || stopping_) {
      throw Error(ErrorCode::kInvalidArgument, "worker already started (or stopped)");
    }
    start_pool_locked();
    producer_ = std::thread([this] { produce(); });
    if (opts_.run_scheduler) {
      scheduler_ = std::make_unique<runtime::Scheduler>(
          *store_, runtime::SchedulerOptions{opts_.scheduled_jobs_check_interval,
                                             opts_.misfire_grace});
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
      deadline = clock_.now() + opts_.shutdown_timeout;
      // Handlers learn at once that we are shutting down; cooperative ones return early and
      // are released by their executor, the others get shutdown_timeout to finish.
      for (auto& [id, slot] : running_) slot.stop.request_stop();
      cv_.notify_all();
      pool_cv_.notify_all();
    }
    if (scheduler_) scheduler_->stop();
    if (producer_.joinable()) producer_.join();  // no claim happens after this line
    {
      std::unique_lock lock(mu_);
      while (!running_.empty() && clock_.now() < deadline) {
        clock_.wait_until(lock, idle_cv_, deadline);
      }
      for (auto& [id, slot] : running_) leftovers.emplace_back(id, slot);
    }
    // Handlers still running after the grace period: give their jobs back now. If such a
    // handler finishes later, its outcome is fenced out (the job is no longer Running for it).
    for (auto& [id, slot] : leftovers) release(id, slot.job_type, slot.attempt, slot.max_attempts);
    {
      std::lock_guard lock(mu_);
      pool_stop_ = true;
      pool_cv_.notify_all();
      flusher_cv_.notify_all();
    }
    for (auto& t : pool_) t.join();  // waits for handlers to return; they were asked to stop
    if (flusher_.joinable()) flusher_.join();
    {
      std::lock_guard lock(mu_);
      stopped_ = true;
    }
    if (!pool_.empty()) spdlog::info("worker {} stopped", worker_id_);
  }

  std::size_t claim_once() {
    {
      std::lock_guard lock(mu_);
      start_pool_locked();
    }
    return claim_round();
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
    int attempt;
    int max_attempts;
    std::stop_source stop;
    std::shared_ptr<runtime::AttemptContext> context;  // set once the attempt starts
  };

  void start_pool_locked() {
    if (!pool_.empty()) return;
    for (int i = 0; i < max_; ++i) pool_.emplace_back([this] { execute_loop(); });
    flusher_ = std::thread([this] { flush_loop(); });
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

  int effective_max_attempts(const JobRecord& job) const {
    if (job.max_attempts) return *job.max_attempts;
    if (const auto* e = handlers_.find(job.job_type); e && e->options.max_attempts) {
      return *e->options.max_attempts;
    }
    return opts_.default_max_attempts;
  }

  // One claim of up to the free slots; the claimed jobs are queued for the pool. Returns how
  // many were claimed.
  std::size_t claim_round() {
    int free;
    TimePoint now = clock_.now();
    {
      std::lock_guard lock(mu_);
      free = max_ - static_cast<int>(running_.size());
      wake_ = false;  // a notify from here on means "look again"
      // This claim sees every job due by `now`, so a remembered due time up to `now` is
      // served by it. A later one stays remembered.
      if (next_due_ <= now) next_due_ = TimePoint::max();
    }
    if (free <= 0) return 0;
    std::vector<JobRecord> jobs = store_->job_claim({worker_id_, free, now});
    std::lock_guard lock(mu_);
    for (auto& job : jobs) {
      running_.emplace(job.id, Slot{job.job_type, job.attempt, effective_max_attempts(job), {}, {}});
      queue_.push_back(std::move(job));
    }
    pool_cv_.notify_all();
    return jobs.size();
  }

  void produce() {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      if (static_cast<int>(running_.size()) >= max_) {
        // Saturated: claim nothing, sleep until a slot frees (no busy spin).
        cv_.wait(lock, [&] { return stopping_ || static_cast<int>(running_.size()) < max_; });
        continue;
      }
      int free = max_ - static_cast<int>(running_.size());
      lock.unlock();
      std::size_t claimed = 0;
      bool failed = false;
      try {
        claimed = claim_round();
      } catch (const std::exception& e) {
        spdlog::error("worker {}: claiming jobs failed: {}", worker_id_, e.what());
        failed = true;
      }
      lock.lock();
      if (!failed && static_cast<int>(claimed) == free) continue;  // there may be more due
      // Idle (or the database failed): sleep until a job of this process is due, a notify
      // arrives, or the polling interval passes.
      TimePoint poll_at = clock_.now() + opts_.polling_interval;
      // next_due_ may move earlier while we sleep (a retry or delayed job of this process).
      auto deadline = [&] { return std::min(poll_at, next_due_); };
      while (!stopping_ && !wake_ && clock_.now() < deadline()) {
        clock_.wait_until(lock, cv_, deadline());
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
      Slot& slot = running_.at(job.id);
      bool skip = stopping_;
      if (!skip) {
        slot.context = std::make_shared<runtime::AttemptContext>(
            *store_, job, worker_id_, slot.max_attempts, slot.stop.get_token(),
            opts_.progress_interval);
      }
      auto context = slot.context;
      int max_attempts = slot.max_attempts;
      lock.unlock();
      if (skip) {
        // Claimed but never started before the stop: give it back untouched.
        release(job.id, job.job_type, job.attempt, max_attempts);
      } else {
        run_attempt(job, *context);
      }
      lock.lock();
      running_.erase(job.id);
      cv_.notify_all();
      idle_cv_.notify_all();
    }
  }

  void run_attempt(const JobRecord& job, runtime::AttemptContext& ctx) {
    emit({JobEvent::Kind::kStarted, job.id, job.job_type, job.attempt, {}});
    JobFinishParams fin;
    fin.id = job.id;
    fin.attempt = job.attempt;
    fin.worker_id = worker_id_;
    enum class Result { kDone, kRetryable, kPermanent, kStopped } result = Result::kDone;
    std::string error;
    const auto* entry = handlers_.find(job.job_type);
    if (entry == nullptr) {
      result = Result::kPermanent;
      error = "no handler is registered for job type '" + job.job_type + "'";
    } else {
      try {
        entry->invoke(job.job_data, ctx);
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
            now_stored->attempt == job.attempt) {
          emit({JobEvent::Kind::kCompleted, job.id, job.job_type, job.attempt, {}});
          return;
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
          fin.run_at = fin.now + runtime::retry_delay(job.attempt, opts_.retry_base_delay,
                                                      opts_.retry_max_delay, unit_random());
          kind = JobEvent::Kind::kRetryScheduled;
        }
        break;
      case Result::kStopped:
        release(job.id, job.job_type, job.attempt, ctx.max_attempts(), &fin);
        return;
    }
    finish(fin, {kind, job.id, job.job_type, job.attempt, error});
  }

  // Puts a Running job of ours back to Pending, due now, and gives back the attempt it used.
  void release(const JobId& id, std::string_view job_type, int attempt, int max_attempts,
               JobFinishParams* from = nullptr) {
    JobFinishParams fin = from ? *from : JobFinishParams{};
    fin.id = id;
    fin.attempt = attempt;
    fin.worker_id = worker_id_;
    fin.status = JobStatus::kPending;
    fin.now = clock_.now();
    fin.run_at = fin.now;
    fin.error_message.reset();
    // The fencing token (attempt) only ever grows; raising max_attempts instead is what makes
    // the release free.
    fin.max_attempts = max_attempts + 1;
    finish(fin, {JobEvent::Kind::kReleased, id, job_type, attempt, {}});
  }

  // Stores an outcome, retrying briefly if the database is busy or down. If it still fails,
  // the job stays Running under this worker's id: orphan rescue brings it back.
  void finish(const JobFinishParams& fin, JobEvent event) {
    for (int i = 0;; ++i) {
      try {
        if (!store_->job_finish(fin)) event.kind = JobEvent::Kind::kFenced;
        break;
      } catch (const std::exception& e) {
        if (i == 4) {
          spdlog::error("job {}: outcome not stored, left for orphan rescue: {}",
                        fin.id.to_string(), e.what());
          return;
        }
        spdlog::warn("job {}: storing the outcome failed, retrying: {}", fin.id.to_string(),
                     e.what());
        std::this_thread::sleep_for(std::chrono::milliseconds(50 << i));
      }
    }
    emit(event);
  }

  void flush_loop() {
    std::unique_lock lock(mu_);
    while (!pool_stop_) {
      std::vector<std::shared_ptr<runtime::AttemptContext>> contexts;
      for (auto& [id, slot] : running_) {
        if (slot.context) contexts.push_back(slot.context);
      }
      lock.unlock();
      for (auto& c : contexts) c->flush_if_due();
      lock.lock();
      TimePoint deadline = clock_.now() + opts_.progress_interval;
      while (!pool_stop_ && clock_.now() < deadline) clock_.wait_until(lock, flusher_cv_, deadline);
    }
  }

  void emit(const JobEvent& e) {
    if (!opts_.on_event) return;
    try {
      opts_.on_event(e);
    } catch (const std::exception& ex) {
      spdlog::warn("on_event callback threw: {}", ex.what());
    }
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
  int subscription_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;          // producer: wake-up, free slot, stop
  std::condition_variable pool_cv_;     // executors: work queued, pool stop
  std::condition_variable idle_cv_;     // a job finished
  std::condition_variable flusher_cv_;  // flusher: pool stop
  bool stopping_ = false;               // guarded by mu_
  bool stopped_ = false;                // guarded by mu_
  bool pool_stop_ = false;              // guarded by mu_
  bool wake_ = false;                   // guarded by mu_
  TimePoint next_due_ = TimePoint::max();  // guarded by mu_
  std::map<JobId, Slot> running_;       // claimed and not finished; guarded by mu_
  std::deque<JobRecord> queue_;         // claimed, waiting for an executor; guarded by mu_
  std::mt19937_64 rng_{std::random_device{}()};  // guarded by mu_
  std::vector<std::thread> pool_;
  std::thread producer_;
  std::thread flusher_;
  std::unique_ptr<runtime::Scheduler> scheduler_;
};

JobsWorker::JobsWorker(std::shared_ptr<Store> store, HandlerRegistry handlers,
                       WorkerOptions options) {
  if (!store) throw Error(ErrorCode::kInvalidArgument, "JobsWorker needs a store");
  if (options.polling_interval.count() <= 0) {
    throw Error(ErrorCode::kInvalidArgument, "polling_interval must be greater than zero");
  }
  if (options.default_max_attempts < 1) {
    throw Error(ErrorCode::kInvalidArgument, "default_max_attempts must be at least 1");
  }
  impl_ = std::make_unique<Impl>(std::move(store), std::move(handlers), std::move(options));
}

JobsWorker::~JobsWorker() = default;

void JobsWorker::start() { impl_->start(); }
void JobsWorker::stop() { impl_->stop(); }

void JobsWorker::run_until_signal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  // Block before start(): threads inherit the mask, so the signal can only reach sigwait.
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  impl_->start();
  int sig = 0;
  sigwait(&set, &sig);
  spdlog::info("received {}, stopping gracefully", sig == SIGINT ? "SIGINT" : "SIGTERM");
  impl_->stop();
}

const std::string& JobsWorker::worker_id() const { return impl_->worker_id(); }
int JobsWorker::max_concurrent_jobs() const { return impl_->max_concurrent_jobs(); }
std::size_t JobsWorker::running_jobs() const { return impl_->running_jobs(); }
std::size_t JobsWorker::TEST_claim_once() { return impl_->claim_once(); }
void JobsWorker::TEST_wait_idle() { impl_->wait_idle(); }

}  // namespace ergon
