#include "api.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <set>

#include "ergon/cron.h"
#include "ergon/job_runner.h"
#include "ergon/time_range.h"
#include "store/handled_types.h"
#include "store/text_rules.h"

namespace ergon::dashboard {
namespace {

using nlohmann::json;

json opt_time(const std::optional<TimePoint>& t) {
  return t ? json(format_timestamp(*t)) : json(nullptr);
}

template <class T>
json opt(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}

// Text from the database may hold bytes that are not UTF-8 (rows stored before the text rule,
// docs/storage.md#text); json::dump would throw on them. They become U+FFFD, as the stores
// clean what they write now.
json text(const std::string& s) { return clean_text(s); }

json opt_text(const std::optional<std::string>& s) { return s ? text(*s) : json(nullptr); }

// The payload as JSON when it parses (the store only holds valid JSON), as text otherwise.
json payload(const std::string& data) {
  json j = json::parse(data, nullptr, false);
  return j.is_discarded() ? text(data) : j;
}

std::string preview(const std::string& data, std::size_t n) {
  return data.size() <= n ? data : truncate_utf8(data, n) + "...";
}

json job_summary(const JobRecord& r) {
  return {{"id", r.id.to_string()},
          {"job_type", text(r.job_type)},
          {"status", to_string(r.status)},
          {"queue", text(r.queue)},
          {"priority", r.priority},
          {"created_at", format_timestamp(r.created_at)},
          {"run_at", format_timestamp(r.run_at)},
          {"started_at", opt_time(r.started_at)},
          {"completed_at", opt_time(r.completed_at)},
          {"attempt", r.attempt},
          {"max_attempts", opt(r.max_attempts)},
          {"progress_percent", opt(r.progress_percent)},
          {"progress_message", opt_text(r.progress_message)},
          {"error_message", r.error_message ? text(preview(*r.error_message, 300)) : json(nullptr)},
          {"payload_preview", text(preview(r.job_data, 120))}};
}

json job_full(const JobRecord& r) {
  json j = job_summary(r);
  j["job_data"] = payload(r.job_data);
  j["error_message"] = opt_text(r.error_message);
  j["worker_id"] = opt_text(r.worker_id);
  j["heartbeat_at"] = opt_time(r.heartbeat_at);
  j["timeout_ms"] =
      r.timeout ? json(std::chrono::duration_cast<std::chrono::milliseconds>(*r.timeout).count())
                : json(nullptr);
  j["cancel_requested"] = r.cancel_requested;
  j["rescue_count"] = r.rescue_count;
  j["unique_key"] = opt_text(r.unique_key);
  j["group_key"] = opt_text(r.group_key);
  j["group_key"] = opt_text(r.group_key);
  return j;
}

const Params::value_type* single(const Params& q, const std::string& key) {
  auto [b, e] = q.equal_range(key);
  if (b == e) return nullptr;
  if (std::next(b) != e) throw ApiError(400, "parameter '" + key + "' is given more than once");
  return &*b;
}

void only_known(const Params& q, const std::set<std::string>& known) {
  for (const auto& [k, v] : q) {
    if (!known.contains(k)) {
      std::string list;
      for (const auto& n : known) list += (list.empty() ? "" : ", ") + n;
      throw ApiError(400, "unknown parameter '" + k + "' (known: " + list + ")");
    }
  }
}

int parse_limit(const Params& q, int fallback) {
  const auto* p = single(q, "limit");
  if (!p) return fallback;
  const std::string& s = p->second;
  int n = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (s.empty() || ec != std::errc() || ptr != s.data() + s.size() || n < 1 || n > kMaxPageSize) {
    throw ApiError(400, "limit must be a whole number from 1 to " + std::to_string(kMaxPageSize) +
                            ", not '" + s + "'");
  }
  return n;
}

// Years 0000 to 9999. A filter instant past TimePoint's range stops at its end (clamp_time),
// which selects what the words say: created_after 2300 matches nothing.
WideTime parse_time(const std::string& key, const std::string& value) {
  auto t = parse_wide_timestamp(value);
  if (!t) {
    throw ApiError(
        400, key + " must be an ISO-8601 time such as 2026-11-28T19:20:11Z, not '" + value + "'");
  }
  return *t;
}

std::string nonempty(const std::string& key, const std::string& value, std::size_t max) {
  if (value.empty() || value.size() > max) {
    throw ApiError(400, key + " must be 1 to " + std::to_string(max) + " bytes");
  }
  return value;
}

// A JSON request body: an object whose values are strings (or booleans where allowed).
json parse_body(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) throw ApiError(400, "the request body is not valid JSON");
  if (!j.is_object()) throw ApiError(400, "the request body must be a JSON object");
  return j;
}

std::string body_string(const json& body, const std::string& key, bool required = true) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) {
    if (required) throw ApiError(400, "'" + key + "' is required");
    return {};
  }
  if (!it->is_string()) throw ApiError(400, "'" + key + "' must be a string");
  return it->get<std::string>();
}

void body_only(const json& body, const std::set<std::string>& known) {
  for (const auto& [k, v] : body.items()) {
    if (!known.contains(k)) throw ApiError(400, "unknown field '" + k + "'");
  }
}

std::string describe(const JobFilter& f) {
  std::string s;
  auto add = [&](const std::string& k, const std::string& v) {
    s += (s.empty() ? "" : " ") + k + "=" + v;
  };
  if (f.status) add("status", std::string(to_string(*f.status)));
  if (f.job_type) add("type", *f.job_type);
  if (f.queue) add("queue", *f.queue);
  if (f.created_after) add("created_after", format_timestamp(*f.created_after));
  if (f.created_before) add("created_before", format_timestamp(*f.created_before));
  if (f.text) add("text", *f.text);
  if (f.before_id) add("before_id", f.before_id->to_string());
  return s;
}

cron::CronExpression parse_expression(const ScheduleRecord& s) {
  cron::ParseOptions o;
  o.format = s.with_seconds ? cron::Format::kSeconds : cron::Format::kStandard;
  return cron::CronExpression::parse(s.cron_expression, o);
}

}  // namespace

void rethrow_as_api_error() {
  try {
    throw;
  } catch (const ApiError&) {
    throw;
  } catch (const Error& e) {
    switch (e.code()) {
      case ErrorCode::kInvalidArgument:
      case ErrorCode::kConfig:
        throw ApiError(400, e.what());
      case ErrorCode::kNotFound:
        throw ApiError(404, e.what());
      case ErrorCode::kUnsupported:
        throw ApiError(501, e.what());
      default:
        throw ApiError(503, std::string("the database failed: ") + e.what());
    }
  }
}

JobId Api::parse_id(const std::string& s) {
  auto id = JobId::parse(s);
  if (!id) throw ApiError(400, "not a job id: '" + s + "'");
  return *id;
}

JobFilter Api::parse_filter(const Params& q, bool paged) {
  std::set<std::string> known = {"status",        "type",           "queue",
                                 "created_after", "created_before", "text"};
  if (paged) {
    known.insert("before_id");
    known.insert("limit");
  }
  only_known(q, known);
  JobFilter f;
  if (const auto* p = single(q, "status"); p && !p->second.empty()) {
    f.status = parse_job_status(p->second);
    if (!f.status) {
      throw ApiError(400,
                     "status must be one of Pending, Running, Completed, Failed, "
                     "Cancelled, not '" +
                         p->second + "'");
    }
  }
  if (const auto* p = single(q, "type"); p && !p->second.empty()) {
    f.job_type = nonempty("type", p->second, kMaxJobTypeBytes);
  }
  if (const auto* p = single(q, "queue"); p && !p->second.empty()) {
    f.queue = nonempty("queue", p->second, kMaxQueueBytes);
  }
  std::optional<WideTime> after, before;
  if (const auto* p = single(q, "created_after"); p && !p->second.empty()) {
    after = parse_time("created_after", p->second);
    f.created_after = clamp_time(*after);
  }
  if (const auto* p = single(q, "created_before"); p && !p->second.empty()) {
    before = parse_time("created_before", p->second);
    f.created_before = clamp_time(*before);
  }
  if (after && before && *after >= *before) {
    throw ApiError(400, "created_after must be earlier than created_before");
  }
  if (const auto* p = single(q, "text"); p && !p->second.empty()) {
    f.text = nonempty("text", p->second, 200);
  }
  if (paged) {
    if (const auto* p = single(q, "before_id"); p && !p->second.empty()) {
      f.before_id = parse_id(p->second);
    }
    f.limit = parse_limit(q, kDefaultPageSize);
  }
  return f;
}

json Api::overview() {
  const TimePoint now = store_->clock().now();
  json out = {{"now", format_timestamp(now)}};
  json unavailable = json::array();
  // Each part degrades on its own: a store that lacks one still shows the others.
  auto part = [&](const char* name, auto&& fill) {
    try {
      fill();
    } catch (...) {
      try {
        rethrow_as_api_error();
      } catch (const ApiError& e) {
        out[name] = nullptr;
        unavailable.push_back({{"part", name}, {"message", e.what()}});
      }
    }
  };
  part("counts", [&] {
    json by_status = json::object();
    for (auto s : {JobStatus::kPending, JobStatus::kRunning, JobStatus::kCompleted,
                   JobStatus::kFailed, JobStatus::kCancelled}) {
      by_status[std::string(to_string(s))] = 0;
    }
    json by_queue = json::object();
    std::optional<TimePoint> oldest;
    for (const auto& c : store_->job_counts(now)) {
      const std::string status(to_string(c.status));
      by_status[status] = by_status[status].get<std::int64_t>() + c.count;
      json& q = by_queue[c.queue];
      if (q.is_null()) q = json::object();
      q[status] = c.count;
      if (c.oldest_due_run_at && (!oldest || *c.oldest_due_run_at < *oldest)) {
        oldest = c.oldest_due_run_at;
      }
    }
    out["counts"] = {{"by_status", by_status}, {"by_queue", by_queue}};
    out["oldest_pending_age_seconds"] =
        oldest ? json(std::chrono::duration<double>(elapsed(*oldest, now)).count()) : json(nullptr);
  });
  part("throughput", [&] {
    const auto bucket = std::chrono::minutes(1);
    json buckets = json::array();
    for (const auto& b : store_->job_throughput(now - std::chrono::hours(1), bucket)) {
      buckets.push_back(
          {{"start", format_timestamp(b.start)}, {"completed", b.completed}, {"failed", b.failed}});
    }
    out["throughput"] = {{"bucket_seconds", 60}, {"buckets", buckets}};
  });
  part("workers", [&] {
    int alive = 0;
    auto workers = store_->worker_list();
    for (const auto& w : workers) {
      if (elapsed(w.heartbeat_at, now) <= kWorkerAliveWindow) ++alive;
    }
    out["workers"] = {{"alive", alive}, {"registered", workers.size()}};
  });
  part("unhandled_types", [&] {
    json types = json::array();
    for (const auto& u : unhandled_job_types_of(*store_, now, kWorkerAliveWindow)) {
      types.push_back({{"job_type", text(u.job_type)}, {"pending", u.pending}});
    }
    out["unhandled_types"] = types;
  });
  part("queues", [&] {
    json qs = json::array();
    for (const auto& q : store_->queue_list()) {
      qs.push_back({{"name", text(q.name)},
                    {"paused", q.paused},
                    {"pending", q.pending},
                    {"running", q.running}});
    }
    out["queues"] = qs;
  });
  out["unavailable"] = unavailable;
  return out;
}

json Api::jobs(const Params& query) {
  JobFilter f = parse_filter(query, true);
  const int limit = f.limit;
  f.limit = limit + 1;  // one more tells whether there is a next page
  std::vector<JobRecord> rows;
  try {
    rows = store_->job_list(f);
  } catch (...) {
    rethrow_as_api_error();
  }
  json out = json::array();
  const std::size_t n = std::min<std::size_t>(rows.size(), static_cast<std::size_t>(limit));
  for (std::size_t i = 0; i < n; ++i) out.push_back(job_summary(rows[i]));
  json next = rows.size() > n ? json(rows[n - 1].id.to_string()) : json(nullptr);
  return {{"jobs", out}, {"next_before_id", next}, {"limit", limit}};
}

json Api::job(const std::string& id_text) {
  const JobId id = parse_id(id_text);
  std::optional<JobRecord> r;
  try {
    r = store_->job_get(id);
  } catch (...) {
    rethrow_as_api_error();
  }
  if (!r) throw ApiError(404, "no job with id " + id.to_string());
  json out = job_full(*r);
  // No attempt history is stored yet: the latest attempt, from the job's own columns.
  json attempts = json::array();
  const bool complete = false;
  if (r->attempt > 0 && r->started_at) {
    attempts.push_back(
        {{"attempt", r->attempt},
         {"worker_id", opt_text(r->worker_id)},
         {"started_at", opt_time(r->started_at)},
         {"finished_at", is_final(r->status) ? opt_time(r->completed_at) : json(nullptr)},
         {"outcome", to_string(r->status)},
         {"error_message", opt_text(r->error_message)}});
  }
  out["attempts"] = attempts;
  out["attempts_complete"] = complete;
  return out;
}

void Api::record(const std::string& actor, const std::string& action, const std::string& target,
                 const std::string& detail, json& answer) {
  AuditRecord a;
  a.at = store_->clock().now();
  a.actor = actor;
  a.action = action;
  a.target = target;
  a.detail = detail;
  try {
    store_->audit_insert(a);
    answer["audited"] = true;
  } catch (const std::exception& e) {
    // The action is done; failing the request now would invite a repeat. Say so instead.
    spdlog::warn("dashboard: could not write the audit record of {} {}: {}", action, target,
                 e.what());
    answer["audited"] = false;
    answer["audit_error"] = text(e.what());
  }
}

json Api::job_action(const std::string& id_text, const std::string& action,
                     const std::string& actor) {
  const JobId id = parse_id(id_text);
  const TimePoint now = store_->clock().now();
  json out = {{"id", id.to_string()}, {"action", action}};
  try {
    if (action == "retry") {
      if (!store_->job_retry(id, now)) {
        if (!store_->job_get(id)) throw ApiError(404, "no job with id " + id.to_string());
        throw ApiError(409, "only a Failed or Cancelled job can be retried");
      }
      store_->notifier().notify(now);  // workers of this process look at once
      out["result"] = "retried";
    } else if (action == "delete") {
      if (!store_->job_delete(id)) {
        if (!store_->job_get(id)) throw ApiError(404, "no job with id " + id.to_string());
        throw ApiError(409, "a Running job cannot be deleted: cancel it first");
      }
      out["result"] = "deleted";
    } else if (action == "cancel") {
      JobRunner runner(store_);
      switch (runner.cancel(id)) {
        case CancelOutcome::kCancelled:
          out["result"] = "cancelled";
          break;
        case CancelOutcome::kRequested:
          out["result"] = "cancel_requested";
          break;
        case CancelOutcome::kAlreadyFinished:
          throw ApiError(409, "the job has already finished");
      }
    } else {
      throw ApiError(404, "unknown action '" + action + "'");
    }
  } catch (...) {
    rethrow_as_api_error();
  }
  record(actor, action, id.to_string(), out["result"].get<std::string>(), out);
  return out;
}

json Api::bulk_action(const std::string& action, const std::string& body,
                      const std::string& actor) {
  json b = parse_body(body);
  Params q;
  for (const auto& [k, v] : b.items()) {
    if (!v.is_string()) throw ApiError(400, "'" + k + "' must be a string");
    q.emplace(k, v.get<std::string>());
  }
  JobFilter f = parse_filter(q, false);
  if (!f.status && !f.job_type && !f.queue && !f.created_after && !f.created_before && !f.text) {
    throw ApiError(400,
                   "a bulk action needs at least one condition (status, type, queue, "
                   "created_after, created_before or text)");
  }
  const TimePoint now = store_->clock().now();
  int n = 0;
  try {
    if (action == "retry") {
      n = store_->job_retry_matching(f, now);
      if (n > 0) store_->notifier().notify(now);
    } else if (action == "delete") {
      n = store_->job_delete_matching(f);
    } else {
      throw ApiError(404, "unknown bulk action '" + action + "'");
    }
  } catch (...) {
    rethrow_as_api_error();
  }
  json out = {{"action", action}, {"filter", describe(f)}, {"count", n}};
  record(actor, "bulk." + action, describe(f), std::to_string(n) + " jobs", out);
  return out;
}

json Api::schedules() {
  std::vector<ScheduleRecord> rows;
  try {
    rows = store_->schedule_list();
  } catch (...) {
    rethrow_as_api_error();
  }
  const TimePoint now = store_->clock().now();
  json out = json::array();
  for (const auto& s : rows) {
    json next = json::array();
    json error = nullptr;
    try {
      auto expr = parse_expression(s);
      auto tz = cron::TimeZone::load(s.time_zone);
      auto from = std::chrono::time_point_cast<std::chrono::seconds>(now);
      std::optional<std::chrono::sys_seconds> t = from;
      for (int i = 0; i < 5; ++i) {
        t = expr.next(*t, tz, false);
        if (!t) break;
        next.push_back(format_timestamp(*t));
      }
    } catch (const std::exception& e) {
      error = text(e.what());
    }
    json last_job = nullptr;
    if (s.last_job_id) {
      last_job = {{"id", s.last_job_id->to_string()}, {"status", nullptr}};
      try {
        if (auto j = store_->job_get(*s.last_job_id)) {
          last_job["status"] = to_string(j->status);
        }
      } catch (const std::exception&) {
        // The outcome is a nicety; the schedule is still worth showing.
      }
    }
    out.push_back({{"name", text(s.name)},
                   {"job_type", text(s.job_type)},
                   {"job_data", payload(s.job_data)},
                   {"cron_expression", text(s.cron_expression)},
                   {"with_seconds", s.with_seconds},
                   {"time_zone", text(s.time_zone)},
                   {"is_enabled", s.is_enabled},
                   {"next_run_time", format_timestamp(s.next_run_time)},
                   {"last_run_time", opt_time(s.last_run_time)},
                   {"last_job", last_job},
                   {"next_occurrences", next},
                   {"expression_error", error},
                   {"misfire_policy", to_string(s.misfire)},
                   {"overlap_policy", to_string(s.overlap)},
                   {"queue", text(s.queue)}});
  }
  return {{"schedules", out}};
}

json Api::schedule_action(const std::string& action, const std::string& body,
                          const std::string& actor) {
  json b = parse_body(body);
  if (action == "edit") {
    body_only(b, {"name", "expression", "time_zone", "with_seconds"});
  } else {
    body_only(b, {"name"});
  }
  const std::string name = nonempty("name", body_string(b, "name"), kMaxJobTypeBytes);
  // The edit's fields are checked before anything is looked up.
  std::string expr, time_zone;
  std::optional<bool> with_seconds;
  if (action == "edit") {
    expr = nonempty("expression", body_string(b, "expression"), 200);
    time_zone = body_string(b, "time_zone", false);
    if (auto it = b.find("with_seconds"); it != b.end() && !it->is_null()) {
      if (!it->is_boolean()) throw ApiError(400, "'with_seconds' must be true or false");
      with_seconds = it->get<bool>();
    }
  }
  json out = {{"name", name}, {"action", action}};
  std::string detail;
  try {
    JobRunner runner(store_);
    if (action == "enable" || action == "disable") {
      if (!runner.set_scheduled_job_enabled(name, action == "enable")) {
        throw ApiError(404, "no schedule named '" + name + "'");
      }
    } else if (action == "trigger") {
      JobId id = runner.trigger_scheduled_job(name);
      out["job_id"] = id.to_string();
      detail = "job " + id.to_string();
    } else if (action == "edit") {
      auto s = runner.get_scheduled_job(name);
      if (!s) throw ApiError(404, "no schedule named '" + name + "'");
      ScheduleOptions o;
      o.name = s->name;
      o.time_zone = time_zone.empty() ? s->time_zone : time_zone;
      o.with_seconds = with_seconds.value_or(s->with_seconds);
      o.misfire = s->misfire;
      o.misfire_limit = s->misfire_limit;
      o.overlap = s->overlap;
      o.queue = s->queue;
      o.priority = s->priority;
      o.max_attempts = s->max_attempts;
      // Validate the zone here: the runner's message names the schedule, this one the field.
      try {
        cron::TimeZone::load(o.time_zone);
      } catch (const std::exception& e) {
        throw ApiError(400, "time_zone: " + std::string(e.what()));
      }
      runner.add_or_update_scheduled_job_raw(s->job_type, s->job_data, expr, o);
      auto updated = runner.get_scheduled_job(name);
      out["next_run_time"] = updated ? json(format_timestamp(updated->next_run_time)) : nullptr;
      detail = expr + " (" + o.time_zone + ")";
    } else {
      throw ApiError(404, "unknown schedule action '" + action + "'");
    }
  } catch (...) {
    rethrow_as_api_error();
  }
  record(actor, "schedule." + action, name, detail, out);
  return out;
}

json Api::workers() {
  std::vector<WorkerRecord> rows;
  std::map<std::string, json> running;
  try {
    rows = store_->worker_list();
    JobFilter f;
    f.status = JobStatus::kRunning;
    f.limit = 10000;
    for (const auto& j : store_->job_list(f)) {
      // job_list may not honour every filter field in every store: check the status here.
      if (j.status != JobStatus::kRunning || !j.worker_id) continue;
      json& list = running[*j.worker_id];
      if (list.is_null()) list = json::array();
      list.push_back({{"id", j.id.to_string()},
                      {"job_type", text(j.job_type)},
                      {"progress_percent", opt(j.progress_percent)}});
    }
  } catch (...) {
    rethrow_as_api_error();
  }
  const TimePoint now = store_->clock().now();
  json out = json::array();
  for (const auto& w : rows) {
    auto it = running.find(w.id);
    out.push_back({{"id", text(w.id)},
                   {"name", text(w.name)},
                   {"host", text(w.host)},
                   {"pid", w.pid},
                   {"started_at", format_timestamp(w.started_at)},
                   {"heartbeat_at", format_timestamp(w.heartbeat_at)},
                   {"alive", elapsed(w.heartbeat_at, now) <= kWorkerAliveWindow},
                   {"running_jobs", it == running.end() ? json::array() : it->second}});
  }
  return {{"workers", out}};
}

json Api::queues() {
  json out = json::array();
  try {
    for (const auto& q : store_->queue_list()) {
      out.push_back({{"name", text(q.name)},
                     {"paused", q.paused},
                     {"pending", q.pending},
                     {"running", q.running}});
    }
  } catch (...) {
    rethrow_as_api_error();
  }
  return {{"queues", out}};
}

json Api::queue_action(const std::string& action, const std::string& body,
                       const std::string& actor) {
  json b = parse_body(body);
  body_only(b, {"name"});
  const std::string name = nonempty("name", body_string(b, "name"), kMaxQueueBytes);
  if (action != "pause" && action != "resume") {
    throw ApiError(404, "unknown queue action '" + action + "'");
  }
  try {
    JobRunner runner(store_);
    if (action == "pause") {
      runner.pause_queue(name);
    } else {
      runner.resume_queue(name);
    }
  } catch (...) {
    rethrow_as_api_error();
  }
  json out = {{"name", name}, {"action", action}};
  record(actor, "queue." + action, name, "", out);
  return out;
}

json Api::audit(const Params& query) {
  only_known(query, {"limit"});
  const int limit = parse_limit(query, 100);
  json out = json::array();
  try {
    for (const auto& a : store_->audit_list(limit)) {
      out.push_back({{"id", a.id},
                     {"at", format_timestamp(a.at)},
                     {"actor", text(a.actor)},
                     {"action", text(a.action)},
                     {"target", text(a.target)},
                     {"detail", text(a.detail)}});
    }
  } catch (...) {
    rethrow_as_api_error();
  }
  return {{"entries", out}};
}

}  // namespace ergon::dashboard
