// The worker, as a composition of services around the jobs it holds. See ergon/jobs_worker.h
// for the contract and ARCHITECTURE.md for the picture.
//
//   producer ──claims──────────┐
//   consumer ──claims by id────┴──► JobSlots ──► executor pool ──outcomes──► completer
//   (messaging)                  (local queue,   (handlers; outcome.h      (group commit,
//                                 slot counts)    decides what they mean)    then the events)
//   maintenance: progress, heartbeat, timeouts, rescuer, pruner, outbox check — on JobSlots
//   relay: outbox ──► message queue (messaging)
//
// Each service has its own file under runtime/ and its own lock; what they share is JobSlots
// (the jobs held, the local queue, the slot counts, the stop's phases) and Registration (when
// the registry row was renewed). This file builds the services from WorkerOptions, starts them,
// and stops them in the order that keeps the guarantees: no claim once the stop began, no job
// left Running, every outcome stored before the worker says it stopped.
#include "ergon/jobs_worker.h"

#include <pthread.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>

#include "ergon/time_range.h"
#include "messaging/job_queue.h"
#include "runtime/claims.h"
#include "runtime/completer.h"
#include "runtime/consumer.h"
#include "runtime/events.h"
#include "runtime/executor.h"
#include "runtime/heartbeat.h"
#include "runtime/job_slots.h"
#include "runtime/maintenance.h"
#include "runtime/producer.h"
#include "runtime/pruner.h"
#include "runtime/registration.h"
#include "runtime/relay.h"
#include "runtime/rescuer.h"
#include "runtime/scheduler.h"
#include "store/store.h"
#include "store/text_rules.h"

namespace ergon {
namespace {

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

int pool_size(const WorkerOptions& o) {
  return o.max_concurrent_jobs > 0
             ? o.max_concurrent_jobs
             : 5 * static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

runtime::SlotOptions slot_options(int max, const WorkerOptions& o,
                                  const runtime::ClaimPolicy& policy) {
  runtime::SlotOptions s{max, o.prefetch_jobs, {}};
  for (const auto& t : policy.targets()) s.target_limits.push_back(t.max_held);
  return s;
}

runtime::RescuerOptions rescuer_options(const WorkerOptions& o) {
  return {o.orphaned_job_threshold, o.default_max_attempts, o.poison_job_rescues};
}

runtime::HeartbeatOptions heartbeat_options(const WorkerOptions& o,
                                            const runtime::ClaimPolicy& policy) {
  runtime::HeartbeatOptions h{rescuer_options(o), o.worker_name, std::nullopt, false};
  if (auto types = policy.job_types()) h.job_types.emplace(types->begin(), types->end());
  h.relay = o.messaging && o.messaging->relay;
  return h;
}

runtime::MaintenanceOptions maintenance_options(const WorkerOptions& o) {
  return {o.progress_interval,      o.heartbeat_interval, o.orphaned_jobs_check_interval,
          o.orphaned_job_threshold, o.prune_interval,     o.timeout_grace,
          o.retry_base_delay,       o.retry_max_delay};
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
        max_(pool_size(opts_)),
        mq_(opts_.messaging ? messaging::make_job_queue(*opts_.messaging) : nullptr),
        events_(opts_.on_event),
        policy_(worker_id_, opts_, handlers_),
        slots_(slot_options(max_, opts_, policy_)),
        registration_(opts_.heartbeat_interval, opts_.polling_interval),
        completer_(*store_, worker_id_, slots_, events_, mq_.get()),
        executor_(*store_, worker_id_, handlers_, slots_, completer_, events_,
                  {max_, opts_.progress_interval, opts_.retry_base_delay, opts_.retry_max_delay,
                   opts_.max_result_bytes}),
        producer_(*store_, policy_, slots_, registration_, {opts_.polling_interval}),
        heartbeat_(*store_, worker_id_, slots_, registration_, completer_,
                   heartbeat_options(opts_, policy_)),
        rescuer_(*store_, worker_id_, events_, rescuer_options(opts_)),
        pruner_(*store_, worker_id_,
                {opts_.completed_jobs_retention, opts_.failed_jobs_retention,
                 opts_.cancelled_jobs_retention}),
        outbox_check_(*store_, worker_id_, {opts_.orphaned_job_threshold, relaying()}),
        maintenance_(*store_, worker_id_, slots_, registration_, completer_,
                     {heartbeat_, rescuer_, pruner_, outbox_check_}, mq_.get(),
                     maintenance_options(opts_)) {
    if (relaying()) {
      relay_ = std::make_unique<runtime::Relay>(
          *store_, worker_id_, *mq_,
          runtime::RelayOptions{opts_.messaging->relay_interval, opts_.heartbeat_interval});
    }
    if (mq_ && opts_.messaging->consume) {
      consumer_ = std::make_unique<runtime::Consumer>(
          *store_, policy_, slots_, *mq_,
          runtime::ConsumerOptions{opts_.messaging->receive_interval});
    }
    // A slot that frees, a claim that ends and the stop may let the claimers take more.
    slots_.on_change([this] {
      producer_.poke();
      if (consumer_) consumer_->poke();
    });
  }

  ~Impl() { stop(); }

  void start() {
    {
      std::lock_guard lock(mu_);
      if (started_ || stopping_) {
        throw Error(ErrorCode::kInvalidArgument, "worker already started (or stopped)");
      }
    }
    if (mq_) {
      // Before anything runs: a queue that cannot be reached or a store without an outbox is
      // a configuration error to report now, not a stream of failures later.
      mq_->prepare();
      store_->outbox_enable();
    }
    heartbeat_.recover_at_start(clock_.now());
    outbox_check_.run_once(clock_.now());
    start_pool();
    producer_.start();
    if (relay_) relay_->start();
    if (consumer_) consumer_->start();
    if (opts_.run_scheduler) {
      scheduler_ = std::make_unique<runtime::Scheduler>(
          *store_, runtime::SchedulerOptions{opts_.scheduled_jobs_check_interval,
                                             opts_.misfire_grace, opts_.on_schedule_fired});
      scheduler_->start();
    }
    {
      std::lock_guard lock(mu_);
      started_ = true;
    }
    spdlog::info("worker {} started: {} slots, {} job types", worker_id_, max_, handlers_.size());
  }

  void stop() {
    {
      std::lock_guard lock(mu_);
      if (stopped_) return;
      stopping_ = true;
    }
    // The grace period starts now, before any handler hears of the stop.
    const TimePoint deadline = saturating_add(clock_.now(), opts_.shutdown_timeout);
    slots_.close(deadline);
    // No claim starts from here on. One under way may still bring jobs, among them jobs that
    // this stop is about to give back (a released job is due at once): wait for it, so that
    // what the stop gives back stays given back.
    slots_.wait_claims_done();
    // Handlers are told to stop; jobs waiting in the local queue (prefetch_jobs) never started
    // and go back at once, at their old place in the queue.
    for (const JobRecord& job : slots_.drain()) {
      completer_.enqueue(
          runtime::finished_attempt(job, runtime::released(job.run_at), worker_id_, clock_.now()));
    }
    if (scheduler_) scheduler_->stop();
    producer_.stop();                  // no claim happens after this line
    if (consumer_) consumer_->stop();  // nor through a message
    if (relay_) relay_->stop();
    slots_.wait_empty_until(clock_, deadline);
    // Handlers still running after the grace period: give their jobs back now. If such a
    // handler finishes later, its outcome is fenced out (the job is no longer Running for it).
    for (const auto& a : slots_.abandon_rest()) {
      completer_.release(a.id, a.job_type, a.lease, a.attempt, a.run_at, a.queue);
    }
    maintenance_.stop();
    executor_.stop();   // waits for handlers to return; they were asked to stop
    completer_.stop();  // every outcome is queued by now: it stores what is left and ends
    bool pool_started;
    {
      std::lock_guard lock(mu_);
      stopped_ = true;
      pool_started = pool_started_;
    }
    heartbeat_.unregister();
    if (pool_started) spdlog::info("worker {} stopped", worker_id_);
  }

  std::size_t claim_once() {
    start_pool();
    return producer_.run_once();
  }
  void wait_quiet() { producer_.wait_quiet(); }
  void wait_idle() { slots_.wait_empty(); }
  std::size_t running_jobs() const { return slots_.size(); }
  const std::string& worker_id() const { return worker_id_; }
  int max_concurrent_jobs() const { return max_; }

 private:
  // The services that run claimed jobs; TEST_claim_once starts them without start().
  void start_pool() {
    {
      std::lock_guard lock(mu_);
      if (pool_started_) return;
      pool_started_ = true;
    }
    // spdlog's registry is built on first use; build it here, before the threads that log. Its
    // first use on one of them raced (under TSan) with this thread's next line, as the library
    // is not instrumented.
    (void)spdlog::default_logger_raw();
    maintenance_.start();
    executor_.start();
    completer_.start();
  }

  [[nodiscard]] bool relaying() const { return mq_ && opts_.messaging->relay; }

  const std::shared_ptr<Store> store_;
  Clock& clock_;
  const HandlerRegistry handlers_;
  const WorkerOptions opts_;
  const std::string worker_id_;
  const int max_;                                  // max_concurrent_jobs, resolved
  const std::unique_ptr<messaging::JobQueue> mq_;  // the messaging transport, if configured
  const runtime::Events events_;
  const runtime::ClaimPolicy policy_;
  runtime::JobSlots slots_;
  runtime::Registration registration_;
  runtime::Completer completer_;
  runtime::Executor executor_;
  runtime::Producer producer_;
  runtime::Heartbeat heartbeat_;
  runtime::Rescuer rescuer_;
  runtime::Pruner pruner_;
  runtime::OutboxCheck outbox_check_;
  runtime::Maintenance maintenance_;
  std::unique_ptr<runtime::Relay> relay_;
  std::unique_ptr<runtime::Consumer> consumer_;
  std::unique_ptr<runtime::Scheduler> scheduler_;

  std::mutex mu_;
  bool started_ = false;       // guarded by mu_
  bool pool_started_ = false;  // guarded by mu_
  bool stopping_ = false;      // guarded by mu_
  bool stopped_ = false;       // guarded by mu_
};

JobsWorker::JobsWorker(std::shared_ptr<Store> store, HandlerRegistry handlers,
                       WorkerOptions options) {
  if (!store) throw Error(ErrorCode::kInvalidArgument, "JobsWorker needs a store");
  runtime::ProducerOptions{options.polling_interval}.validate();
  runtime::SlotOptions{1, options.prefetch_jobs}.validate();
  runtime::RescuerOptions{.default_max_attempts = options.default_max_attempts}.validate();
  // Stored in the workers table and in every job it claims (store/text_rules.h).
  check_identifier("worker_name", options.worker_name, kMaxWorkerNameBytes, true);
  check_durations(options);
  runtime::check_queue_limits(options.queues, options.queue_limits);
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
