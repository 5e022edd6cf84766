#include "api.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <set>

#include "ergon/time_range.h"
#include "ops/filter.h"
#include "ops/render.h"
#include "store/store.h"  // kMaxJobTypeBytes, kMaxQueueBytes
#include "store/text_rules.h"

namespace ergon::dashboard {
namespace {

using nlohmann::json;

json text(const std::string& s) { return ops::text_json(s); }

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

// An action's audit outcome in its answer. The action is done; failing the request now would
// invite a repeat: say so instead.
void audited(const ops::Audited& a, std::string_view action, std::string_view target,
             json& answer) {
  answer["audited"] = a.ok();
  if (a.ok()) return;
  spdlog::warn("dashboard: could not write the audit record of {} {}: {}", action, target,
               a.message());
  answer["audit_error"] = text(a.message());
}

// What `read` returns, each rendered by `render`, as a JSON array; errors as ApiErrors.
template <class Read, class Render>
json rendered(Read&& read, Render&& render) {
  json out = json::array();
  try {
    for (const auto& row : read()) out.push_back(render(row));
  } catch (...) {
    rethrow_as_api_error();
  }
  return out;
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
  try {
    return ops::parse_job_id(s);
  } catch (const ops::FieldError& e) {
    throw ApiError(400, e.detail());
  }
}

JobFilter Api::parse_filter(const Params& q, bool paged) {
  std::set<std::string> known = {"status",         "type", "queue", "created_after",
                                 "created_before", "text", "tag"};
  if (paged) {
    known.insert("before_id");
    known.insert("limit");
  }
  only_known(q, known);
  auto value = [&](const std::string& key) {
    const auto* p = single(q, key);
    return p ? p->second : std::string();
  };
  ops::FilterText text{.status = value("status"),
                       .type = value("type"),
                       .queue = value("queue"),
                       .created_after = value("created_after"),
                       .created_before = value("created_before"),
                       .text = value("text")};
  text.tag = value("tag");
  if (paged) text.before_id = value("before_id");
  JobFilter f;
  try {
    f = ops::parse_filter(text);
  } catch (const ops::FieldError& e) {
    throw ApiError(400, e.what());
  }
  if (paged) f.limit = parse_limit(q, kDefaultPageSize);
  return f;
}

json Api::overview() {
  const TimePoint now = stats_.now();
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
    for (const auto& c : stats_.job_counts(now)) {
      const std::string status(to_string(c.status));
      by_status[status] = by_status[status].get<std::int64_t>() + c.count;
      json& q = by_queue[clean_text(c.queue)];
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
    for (const auto& b : stats_.throughput(now - std::chrono::hours(1), bucket)) {
      buckets.push_back(
          {{"start", format_timestamp(b.start)}, {"completed", b.completed}, {"failed", b.failed}});
    }
    out["throughput"] = {{"bucket_seconds", 60}, {"buckets", buckets}};
  });
  part("workers", [&] {
    const ops::WorkerCounts workers = stats_.workers(now, kWorkerAliveWindow);
    out["workers"] = {{"alive", workers.alive}, {"registered", workers.registered}};
  });
  part("unhandled_types", [&] {
    json types = json::array();
    for (const auto& u : stats_.unhandled_types(now, kWorkerAliveWindow)) {
      types.push_back({{"job_type", text(u.job_type)}, {"pending", u.pending}});
    }
    out["unhandled_types"] = types;
  });
  part("queues", [&] {
    json qs = json::array();
    for (const auto& q : queues_.list()) qs.push_back(ops::queue_to_json(q));
    out["queues"] = qs;
  });
  out["unavailable"] = unavailable;
  return out;
}

json Api::jobs(const Params& query) {
  const JobFilter f = parse_filter(query, true);
  ops::JobPage page;
  try {
    page = jobs_.list(f);
  } catch (...) {
    rethrow_as_api_error();
  }
  json out = json::array();
  for (const auto& r : page.jobs) out.push_back(ops::job_summary_to_json(r));
  json next = page.next_before_id ? json(page.next_before_id->to_string()) : json(nullptr);
  return {{"jobs", out}, {"next_before_id", next}, {"limit", f.limit}};
}

json Api::job(const std::string& id_text) {
  const JobId id = parse_id(id_text);
  std::optional<JobRecord> r;
  try {
    r = jobs_.get(id);
  } catch (...) {
    rethrow_as_api_error();
  }
  if (!r) throw ApiError(404, "no job with id " + id.to_string());
  json out = ops::job_to_json(*r);
  try {
    out["attempts"] = ops::attempts_to_json(jobs_.attempts(id));
  } catch (...) {
    rethrow_as_api_error();
  }
  return out;
}

json Api::job_action(const std::string& id_text, const std::string& action,
                     const std::string& actor) {
  const JobId id = parse_id(id_text);
  json out = {{"id", id.to_string()}, {"action", action}};
  ops::Audited audit;
  try {
    if (action == "retry" || action == "delete") {
      const bool retry = action == "retry";
      auto change = retry ? jobs_.retry_job(id, actor) : jobs_.delete_job(id, actor);
      switch (change.change) {
        case ops::Change::kDone:
          break;
        case ops::Change::kNotFound:
          throw ApiError(404, "no job with id " + id.to_string());
        case ops::Change::kRefused:
          throw ApiError(409, (retry ? "not retried: " : "not deleted: ") + change.refusal);
      }
      out["result"] = retry ? "retried" : "deleted";
      audit = change.audited;
    } else if (action == "cancel") {
      auto change = jobs_.cancel_job(id, actor);
      switch (change.outcome) {
        case CancelOutcome::kCancelled:
          out["result"] = "cancelled";
          break;
        case CancelOutcome::kRequested:
          out["result"] = "cancel_requested";
          break;
        case CancelOutcome::kAlreadyFinished:
          throw ApiError(409, "the job has already finished");
      }
      audit = change.audited;
    } else {
      throw ApiError(404, "unknown action '" + action + "'");
    }
  } catch (...) {
    rethrow_as_api_error();
  }
  audited(audit, action, id.to_string(), out);
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
  const JobFilter f = parse_filter(q, false);
  ops::BulkChange change;
  try {
    if (action == "retry") {
      change = jobs_.retry_matching(f, actor);
    } else if (action == "delete") {
      change = jobs_.delete_matching(f, actor);
    } else {
      throw ApiError(404, "unknown bulk action '" + action + "'");
    }
  } catch (...) {
    rethrow_as_api_error();
  }
  json out = {{"action", action}, {"filter", change.filter}, {"count", change.count}};
  audited(change.audited, "bulk." + action, change.filter, out);
  return out;
}

json Api::schedules() {
  std::vector<ScheduleRecord> rows;
  try {
    rows = schedules_.list();
  } catch (...) {
    rethrow_as_api_error();
  }
  const TimePoint now = stats_.now();
  json out = json::array();
  for (const auto& s : rows) {
    json row = ops::schedule_to_json(s);
    const ops::Occurrences next = ops::next_occurrences(s, now, 5);
    row["next_occurrences"] = json::array();
    for (const auto& t : next.next) row["next_occurrences"].push_back(format_timestamp(t));
    row["expression_error"] = next.error ? text(*next.error) : json(nullptr);
    row["last_job"] = nullptr;
    if (s.last_job_id) {
      auto status = schedules_.last_job_status(s);
      row["last_job"] = {{"id", s.last_job_id->to_string()},
                         {"status", status ? json(to_string(*status)) : json(nullptr)}};
    }
    out.push_back(std::move(row));
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
  std::string expr;
  std::optional<std::string> time_zone;
  std::optional<bool> with_seconds;
  if (action == "edit") {
    expr = nonempty("expression", body_string(b, "expression"), 200);
    if (std::string tz = body_string(b, "time_zone", false); !tz.empty()) time_zone = tz;
    if (auto it = b.find("with_seconds"); it != b.end() && !it->is_null()) {
      if (!it->is_boolean()) throw ApiError(400, "'with_seconds' must be true or false");
      with_seconds = it->get<bool>();
    }
  }
  json out = {{"name", name}, {"action", action}};
  ops::Audited audit;
  try {
    if (action == "enable" || action == "disable") {
      audit = schedules_.set_enabled(name, action == "enable", actor);
    } else if (action == "trigger") {
      auto triggered = schedules_.trigger(name, actor);
      out["job_id"] = triggered.job_id.to_string();
      audit = triggered.audited;
    } else if (action == "edit") {
      auto change = schedules_.edit(name, expr, time_zone, with_seconds, actor);
      out["next_run_time"] =
          change.schedule ? json(format_timestamp(change.schedule->next_run_time)) : nullptr;
      audit = change.audited;
    } else {
      throw ApiError(404, "unknown schedule action '" + action + "'");
    }
  } catch (...) {
    rethrow_as_api_error();
  }
  audited(audit, "schedule." + action, name, out);
  return out;
}

json Api::workers() {
  return {{"workers", rendered([&] { return workers_.list(); }, ops::worker_to_json)}};
}

json Api::queues() {
  return {{"queues", rendered([&] { return queues_.list(); }, ops::queue_to_json)}};
}

json Api::queue_action(const std::string& action, const std::string& body,
                       const std::string& actor) {
  json b = parse_body(body);
  body_only(b, {"name"});
  const std::string name = nonempty("name", body_string(b, "name"), kMaxQueueBytes);
  if (action != "pause" && action != "resume") {
    throw ApiError(404, "unknown queue action '" + action + "'");
  }
  ops::Audited audit;
  try {
    audit = action == "pause" ? queues_.pause(name, actor) : queues_.resume(name, actor);
  } catch (...) {
    rethrow_as_api_error();
  }
  json out = {{"name", name}, {"action", action}};
  audited(audit, "queue." + action, name, out);
  return out;
}

json Api::audit(const Params& query) {
  only_known(query, {"limit"});
  const int limit = parse_limit(query, 100);
  return {{"entries", rendered([&] { return audit_.list(limit); }, ops::audit_to_json)}};
}

}  // namespace ergon::dashboard
