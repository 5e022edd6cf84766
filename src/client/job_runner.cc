#include "ergon/job_runner.h"

#include "ergon/config.h"
#include "ergon/cron.h"
#include "ergon/time_range.h"
#include "runtime/scheduler.h"
#include "store/handled_types.h"
#include "store/store.h"
#include "store/text_rules.h"

namespace ergon {
namespace {

void check_tags(const std::vector<std::string>& tags) {
  if (tags.size() > kMaxTags) {
    throw Error(ErrorCode::kInvalidArgument,
                std::to_string(tags.size()) + " tags, the limit is " + std::to_string(kMaxTags));
  }
  for (std::size_t i = 0; i < tags.size(); ++i) {
    check_identifier("tag", tags[i], kMaxTagBytes);
    if (std::find(tags.begin(), tags.begin() + static_cast<std::ptrdiff_t>(i), tags[i]) !=
        tags.begin() + static_cast<std::ptrdiff_t>(i)) {
      throw Error(ErrorCode::kInvalidArgument, "tag '" + tags[i] + "' is given twice");
    }
  }
}

// Validates what start_job was given and turns it into insert params. Nothing is written
// unless every check passes.
JobInsertParams make_insert(Store& store, std::string_view job_type, std::string_view job_data,
                            const JobOptions& o) {
  // Identifiers and the payload follow the text rule of every store (store/text_rules.h).
  check_identifier("job type", job_type, kMaxJobTypeBytes);
  check_job_data(job_type, job_data);
  if (o.run_at && o.delay) {
    throw Error(ErrorCode::kInvalidArgument, "give run_at or delay, not both");
  }
  if (o.delay) check_duration(*o.delay, "delay");
  if (o.run_at) check_run_time(*o.run_at, "run_at");
  if (o.max_attempts && *o.max_attempts < 1) {
    throw Error(ErrorCode::kInvalidArgument, "max_attempts must be at least 1");
  }
  check_identifier("queue name", o.queue, kMaxQueueBytes);
  TimePoint now = store.clock().now();
  JobInsertParams p;
  p.id = JobId::generate(now);
  p.job_type = job_type;
  p.job_data = job_data;
  p.created_at = now;
  p.run_at = o.run_at ? *o.run_at : o.delay ? saturating_add(now, *o.delay) : now;
  if (o.delay && p.run_at > kLatestRunTime) {
    throw Error(ErrorCode::kInvalidArgument,
                "delay: " + run_time_range_error(format_timespan(*o.delay) + " from now"));
  }
  p.max_attempts = o.max_attempts;
  if (o.timeout && o.timeout->count() <= 0) {
    throw Error(ErrorCode::kInvalidArgument, "timeout must be greater than zero");
  }
  if (o.timeout) check_duration(*o.timeout, "timeout");
  p.queue = o.queue;
  p.priority = o.priority;
  p.timeout = o.timeout;
  check_identifier("unique_key", o.unique_key, kMaxUniqueKeyBytes, true);
  if (o.unique_while_running && o.unique_key.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "unique_while_running needs a unique_key");
  }
  if (o.unique_period) {
    if (o.unique_key.empty()) {
      throw Error(ErrorCode::kInvalidArgument, "unique_period needs a unique_key");
    }
    if (*o.unique_period < std::chrono::milliseconds(1) ||
        *o.unique_period > std::chrono::hours(24 * 366)) {
      throw Error(ErrorCode::kInvalidArgument, "unique_period must be 1 ms to 366 days");
    }
  }
  p.unique_key = o.unique_key;
  p.unique_while_running = o.unique_while_running;
  p.unique_period = o.unique_period;
  check_identifier("group_key", o.group_key, kMaxGroupKeyBytes, true);
  p.group_key = o.group_key;
  check_tags(o.tags);
  p.tags = o.tags;
  if (!o.meta.empty()) {
    if (o.meta.size() > kMaxMetaBytes) {
      throw Error(ErrorCode::kInvalidArgument, "meta is " + std::to_string(o.meta.size()) +
                                                   " bytes, the limit is " +
                                                   std::to_string(kMaxMetaBytes));
    }
    check_json("meta", o.meta);
    if (o.meta[o.meta.find_first_not_of(" \t\r\n")] != '{') {
      throw Error(ErrorCode::kInvalidArgument, "meta must be a JSON object");
    }
  }
  p.meta = o.meta;
  return p;
}

// What start_job writes: `options` as the enqueue middleware leave them, checked. With
// middleware, the changed options are kept in `changed`, which the params view (tags, meta,
// queue): it must outlive them, unmoved.
JobInsertParams prepare(Store& store,
                        const std::vector<std::pair<std::string, EnqueueMiddleware>>& middleware,
                        std::string_view job_type, std::string_view job_data,
                        const JobOptions& options, std::optional<JobOptions>& changed) {
  if (middleware.empty()) return make_insert(store, job_type, job_data, options);
  changed.emplace(options);
  EnqueueRequest request{job_type, job_data, *changed};
  for (const auto& [type, m] : middleware) {
    if (type.empty() || type == job_type) m(request);
  }
  return make_insert(store, job_type, job_data, *changed);
}

}  // namespace

JobRunner::JobRunner(std::shared_ptr<Store> store) : store_(std::move(store)) {
  if (!store_) throw Error(ErrorCode::kInvalidArgument, "JobRunner needs a store");
}

void JobRunner::use(EnqueueMiddleware middleware, std::string job_type) {
  if (!middleware) throw Error(ErrorCode::kInvalidArgument, "null enqueue middleware");
  middleware_.emplace_back(std::move(job_type), std::move(middleware));
}

JobId JobRunner::start_job_raw(std::string_view job_type, std::string_view job_data,
                               const JobOptions& options) {
  std::optional<JobOptions> changed;
  JobInsertParams p = prepare(*store_, middleware_, job_type, job_data, options, changed);
  return store_->job_insert(p);
}

JobId JobRunner::start_job_raw(sqlite3* conn, std::string_view job_type, std::string_view job_data,
                               const JobOptions& options) {
  std::optional<JobOptions> changed;
  JobInsertParams p = prepare(*store_, middleware_, job_type, job_data, options, changed);
  return store_->job_insert_tx(conn, p);
}

JobId JobRunner::start_job_raw(pg_conn* conn, std::string_view job_type, std::string_view job_data,
                               const JobOptions& options) {
  std::optional<JobOptions> changed;
  JobInsertParams p = prepare(*store_, middleware_, job_type, job_data, options, changed);
  return store_->job_insert_tx(conn, p);
}

std::vector<JobId> JobRunner::start_jobs_raw(std::string_view job_type,
                                             const std::vector<std::string>& job_data,
                                             const JobOptions& options) {
  if (!options.unique_key.empty()) {
    throw Error(ErrorCode::kInvalidArgument,
                "unique_key is for start_job: a bulk enqueue cannot return the holders' ids");
  }
  // Validate every job before writing any: a bad element rejects the whole batch.
  std::vector<JobInsertParams> params;
  params.reserve(job_data.size());
  // Each job's options as its middleware left them (none without middleware); sized once, so
  // never moved.
  std::vector<std::optional<JobOptions>> changed(middleware_.empty() ? 0 : job_data.size());
  std::optional<JobOptions> none;
  for (std::size_t i = 0; i < job_data.size(); ++i) {
    params.push_back(prepare(*store_, middleware_, job_type, job_data[i], options,
                             changed.empty() ? none : changed[i]));
  }
  store_->job_insert_many(params);
  std::vector<JobId> ids;
  ids.reserve(params.size());
  for (const auto& p : params) ids.push_back(p.id);
  return ids;
}

std::string JobRunner::add_or_update_scheduled_job_raw(std::string_view job_type,
                                                       std::string_view job_data,
                                                       std::string_view cron_expression,
                                                       ScheduleOptions o) {
  JobOptions job_options;
  job_options.queue = o.queue;
  job_options.priority = o.priority;
  job_options.max_attempts = o.max_attempts;
  job_options.tags = o.tags;
  job_options.meta = o.meta;
  // The same checks as a one-off job, on the job the schedule will enqueue.
  JobInsertParams checked = make_insert(*store_, job_type, job_data, job_options);
  ScheduleRecord r;
  r.name = o.name.empty() ? std::string(job_type) : o.name;
  check_identifier("schedule name", r.name, kMaxScheduleNameBytes);
  if (o.misfire_limit < 1) {
    throw Error(ErrorCode::kInvalidArgument, "misfire_limit must be at least 1");
  }
  r.id = checked.id;
  r.job_type = job_type;
  r.job_data = job_data;
  r.cron_expression = std::string(cron_expression);
  r.with_seconds = o.with_seconds;
  r.time_zone = o.time_zone;
  std::optional<TimePoint> next;
  try {
    next = runtime::first_slot_after(r.cron_expression, r.with_seconds, r.time_zone,
                                     checked.created_at);
  } catch (const cron::CronError& e) {
    throw Error(ErrorCode::kInvalidArgument, "schedule '" + r.name + "': " + std::string(e.what()));
  }
  if (!next) {
    throw Error(ErrorCode::kInvalidArgument, "schedule '" + r.name + "': '" + r.cron_expression +
                                                 "' never fires (it has no occurrence up to "
                                                 "9999-12-31)");
  }
  r.next_run_time = *next;
  r.is_enabled = true;
  r.misfire = o.misfire;
  r.misfire_limit = o.misfire_limit;
  r.overlap = o.overlap;
  r.queue = o.queue;
  r.priority = o.priority;
  r.max_attempts = o.max_attempts;
  r.tags = std::move(o.tags);
  if (!o.meta.empty()) r.meta = std::move(o.meta);
  store_->schedule_upsert({r});
  return r.name;
}

bool JobRunner::remove_scheduled_job(std::string_view name) {
  return store_->schedule_remove(name);
}

bool JobRunner::set_scheduled_job_enabled(std::string_view name, bool enabled) {
  return store_->schedule_set_enabled(name, enabled);
}

JobId JobRunner::trigger_scheduled_job(std::string_view name) {
  auto s = store_->schedule_get(name);
  if (!s) throw Error(ErrorCode::kNotFound, "no schedule named '" + std::string(name) + "'");
  JobOptions o;
  o.queue = s->queue;
  o.priority = s->priority;
  o.max_attempts = s->max_attempts;
  o.tags = s->tags;
  o.meta = s->meta.value_or("");
  return start_job_raw(s->job_type, s->job_data, o);
}

std::vector<ScheduleRecord> JobRunner::list_scheduled_jobs() const {
  return store_->schedule_list();
}

std::optional<ScheduleRecord> JobRunner::get_scheduled_job(std::string_view name) const {
  return store_->schedule_get(name);
}

CancelOutcome JobRunner::cancel(const JobId& id) {
  switch (store_->job_cancel(id, store_->clock().now())) {
    case CancelResult::kCancelled:
      return CancelOutcome::kCancelled;
    case CancelResult::kRequested:
      store_->cancel_notifier().notify(store_->clock().now());
      return CancelOutcome::kRequested;
    case CancelResult::kAlreadyFinished:
      return CancelOutcome::kAlreadyFinished;
    case CancelResult::kNotFound:
      break;
  }
  throw Error(ErrorCode::kNotFound, "no job with id " + id.to_string());
}

std::vector<WorkerRecord> JobRunner::list_workers() const { return store_->worker_list(); }

void JobRunner::pause_queue(std::string_view queue) {
  check_identifier("queue name", queue, kMaxQueueBytes);
  store_->queue_set_paused(queue, true, store_->clock().now());
}

void JobRunner::resume_queue(std::string_view queue) {
  check_identifier("queue name", queue, kMaxQueueBytes);
  store_->queue_set_paused(queue, false, store_->clock().now());
  // Workers of this process look again now; others at their next poll.
  store_->notifier().notify(store_->clock().now());
}

std::vector<QueueRecord> JobRunner::list_queues() const { return store_->queue_list(); }

void JobRunner::set_type_limit(const TypeLimit& limit) {
  store_->limit_set(limit, store_->clock().now());
}

void JobRunner::remove_type_limit(std::string_view job_type) {
  store_->limit_remove(job_type, store_->clock().now());
}

void JobRunner::set_concurrency_limit(std::string_view job_type, std::optional<int> max_running) {
  // The type's other limits stay as they are.
  TypeLimit limit;
  limit.job_type = job_type;
  for (auto& l : store_->limit_list()) {
    if (l.job_type == job_type) limit = std::move(l);
  }
  limit.max_running = max_running;
  if (!limit.max_running && !limit.rate_limit) {
    remove_type_limit(job_type);
  } else {
    set_type_limit(limit);
  }
}

std::vector<TypeLimit> JobRunner::list_type_limits() const { return store_->limit_list(); }

void JobRunner::notify() { store_->notifier().notify(store_->clock().now()); }

std::optional<JobRecord> JobRunner::get_job(const JobId& id) const { return store_->job_get(id); }

std::vector<AttemptRecord> JobRunner::list_attempts(const JobId& id) const {
  return store_->job_attempt_list(id);
}

std::optional<std::string> JobRunner::result_json(const JobId& id) const {
  std::optional<JobRecord> job = store_->job_get(id);
  if (!job) throw Error(ErrorCode::kNotFound, "job " + id.to_string() + " not found");
  return job->result;
}

std::optional<JobRecord> JobRunner::wait(const JobId& id, Duration timeout) {
  if (timeout.count() < 0) {
    throw Error(ErrorCode::kInvalidArgument, "the timeout must not be negative");
  }
  Clock& clock = store_->clock();
  const TimePoint deadline = saturating_add(clock.now(), timeout);
  std::mutex mu;
  std::condition_variable cv;
  bool told = false;         // guarded by mu
  store_->watch_finishes();  // other processes' workers too, where the store can hear them
  transport::Notifier& finished = store_->finish_notifier();
  const int subscription = finished.subscribe([&](TimePoint) {
    std::lock_guard lock(mu);
    told = true;
    cv.notify_all();
  });
  struct Unsubscribe {
    transport::Notifier& notifier;
    int id;
    ~Unsubscribe() { notifier.unsubscribe(id); }
  } unsubscribe{finished, subscription};
  // Polling covers what no notification reaches: another process's worker on SQLite, a job
  // that ended before PostgreSQL's worker looked for waiters again, a cancel or a rescue.
  // Look again soon at first (most jobs are short), then less often so that a long wait costs
  // little.
  Duration poll = std::chrono::milliseconds(10);
  for (;;) {
    std::optional<JobRecord> job = store_->job_get(id);
    if (!job) throw Error(ErrorCode::kNotFound, "job " + id.to_string() + " not found");
    if (is_final(job->status)) return job;
    std::unique_lock lock(mu);
    const TimePoint now = clock.now();
    if (now >= deadline) return std::nullopt;
    const TimePoint until = std::min(deadline, saturating_add(now, poll));
    while (!told && clock.now() < until) clock.wait_until(lock, cv, until);
    told = false;
    poll = std::min<Duration>(poll * 2, std::chrono::milliseconds(250));
  }
}

std::vector<JobRecord> JobRunner::list_jobs(const JobFilter& filter) const {
  return store_->job_list(filter);
}

bool JobRunner::retry_job(const JobId& id) {
  if (store_->job_retry(id, store_->clock().now())) return true;
  if (!store_->job_get(id)) throw Error(ErrorCode::kNotFound, "no job with id " + id.to_string());
  return false;
}

bool JobRunner::delete_job(const JobId& id) {
  if (store_->job_delete(id)) return true;
  if (!store_->job_get(id)) throw Error(ErrorCode::kNotFound, "no job with id " + id.to_string());
  return false;
}

int JobRunner::retry_jobs(const JobFilter& filter) {
  return store_->job_retry_matching(filter, store_->clock().now());
}

int JobRunner::delete_jobs(const JobFilter& filter) { return store_->job_delete_matching(filter); }

std::int64_t JobRunner::purge_jobs(JobStatus status, Duration older_than, int batch) {
  if (!is_final(status)) {
    throw Error(ErrorCode::kInvalidArgument, "only Completed, Failed or Cancelled jobs are purged");
  }
  if (batch < 1 || batch > 10000) {
    throw Error(ErrorCode::kInvalidArgument, "batch must be between 1 and 10000");
  }
  check_duration(older_than, "older_than");
  // Older than a span that reaches past TimePoint's range: nothing is.
  const TimePoint before = saturating_sub(store_->clock().now(), older_than);
  std::int64_t total = 0;
  for (;;) {
    int n = store_->job_prune(status, before, batch);
    total += n;
    if (n < batch) return total;
  }
}

std::vector<JobCount> JobRunner::job_counts() const {
  return store_->job_counts(store_->clock().now());
}

OutboxState JobRunner::outbox_state() const { return store_->outbox_state(); }

std::vector<JobTypeCount> JobRunner::unhandled_job_types(Duration alive_within) const {
  return unhandled_job_types_of(*store_, store_->clock().now(), alive_within);
}

void JobRunner::audit(std::string_view actor, std::string_view action, std::string_view target,
                      std::string_view detail) {
  store_->audit_insert({.at = store_->clock().now(),
                        .actor = std::string(actor),
                        .action = std::string(action),
                        .target = std::string(target),
                        .detail = std::string(detail)});
}

std::vector<AuditRecord> JobRunner::list_audit(int limit) const {
  return store_->audit_list(limit);
}

}  // namespace ergon
