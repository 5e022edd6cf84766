#include "ops/render.h"

#include <chrono>

#include "store/store.h"  // truncate_utf8
#include "store/text_rules.h"

namespace ergon::ops {
namespace {

using nlohmann::json;

json opt_time(const std::optional<TimePoint>& t) {
  return t ? json(format_timestamp(*t)) : json(nullptr);
}

template <class T>
json opt(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}

std::string preview(std::string_view data, std::size_t n) {
  return data.size() <= n ? std::string(data) : truncate_utf8(data, n) + "...";
}

// Stored text in the mode asked for.
struct Render {
  Text mode;
  [[nodiscard]] json text(std::string_view s) const {
    return mode == Text::kClean ? text_json(s) : json(std::string(s));
  }
  [[nodiscard]] json opt_text(const std::optional<std::string>& s) const {
    return s ? text(*s) : json(nullptr);
  }
  // The payload as JSON when it parses, as text otherwise.
  [[nodiscard]] json payload(const std::string& data) const {
    json j = json::parse(data, nullptr, false);
    return j.is_discarded() ? text(data) : j;
  }
  [[nodiscard]] json opt_payload(const std::optional<std::string>& data) const {
    return data ? payload(*data) : json(nullptr);
  }
  [[nodiscard]] json tags(const std::vector<std::string>& tags) const {
    json out = json::array();
    for (const auto& t : tags) out.push_back(text(t));
    return out;
  }
  [[nodiscard]] json summary(const JobRecord& r) const {
    return {
        {"id", r.id.to_string()},
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
};

}  // namespace

json text_json(std::string_view s) { return clean_text(s); }

json job_summary_to_json(const JobRecord& r) { return Render{Text::kClean}.summary(r); }

json job_to_json(const JobRecord& r, Text mode) {
  const Render render{mode};
  json j = render.summary(r);
  j["job_data"] = render.payload(r.job_data);
  j["error_message"] = render.opt_text(r.error_message);
  j["worker_id"] = render.opt_text(r.worker_id);
  j["heartbeat_at"] = opt_time(r.heartbeat_at);
  j["timeout_ms"] =
      r.timeout ? json(std::chrono::duration_cast<std::chrono::milliseconds>(*r.timeout).count())
                : json(nullptr);
  j["cancel_requested"] = r.cancel_requested;
  j["rescue_count"] = r.rescue_count;
  j["unique_key"] = render.opt_text(r.unique_key);
  j["group_key"] = render.opt_text(r.group_key);
  j["result"] = render.opt_payload(r.result);
  j["tags"] = render.tags(r.tags);
  j["meta"] = render.opt_payload(r.meta);
  return j;
}

json attempts_to_json(const std::vector<AttemptRecord>& attempts) {
  const Render render{Text::kClean};
  json out = json::array();
  for (const AttemptRecord& a : attempts) {
    out.push_back({{"attempt", a.attempt},
                   {"lease", a.lease},
                   {"worker_id", render.text(a.worker_id)},
                   {"started_at", format_timestamp(a.started_at)},
                   {"finished_at", format_timestamp(a.finished_at)},
                   {"duration_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                       a.finished_at - a.started_at)
                                       .count()},
                   {"outcome", to_string(a.outcome)},
                   {"error_message", render.opt_text(a.error_message)}});
  }
  return out;
}

json schedule_to_json(const ScheduleRecord& s) {
  const Render render{Text::kClean};
  return {{"id", s.id.to_string()},
          {"name", text_json(s.name)},
          {"job_type", text_json(s.job_type)},
          {"job_data", render.payload(s.job_data)},
          {"cron_expression", text_json(s.cron_expression)},
          {"with_seconds", s.with_seconds},
          {"time_zone", text_json(s.time_zone)},
          {"next_run_time", format_timestamp(s.next_run_time)},
          {"last_run_time", opt_time(s.last_run_time)},
          {"is_enabled", s.is_enabled},
          {"misfire_policy", to_string(s.misfire)},
          {"misfire_limit", s.misfire_limit},
          {"overlap_policy", to_string(s.overlap)},
          {"queue", text_json(s.queue)},
          {"tags", render.tags(s.tags)},
          {"meta", render.opt_payload(s.meta)},
          {"last_job_id", s.last_job_id ? json(s.last_job_id->to_string()) : json(nullptr)}};
}

json worker_to_json(const WorkerView& v) {
  const WorkerRecord& w = v.worker;
  json running = json::array();
  for (const auto& j : v.running) {
    running.push_back({{"id", j.id.to_string()},
                       {"job_type", text_json(j.job_type)},
                       {"progress_percent", opt(j.progress_percent)}});
  }
  return {{"id", text_json(w.id)},
          {"name", text_json(w.name)},
          {"host", text_json(w.host)},
          {"pid", w.pid},
          {"boot_id", text_json(w.boot_id)},
          {"pid_namespace", w.pid_namespace},
          {"process_start", w.process_start},
          {"started_at", format_timestamp(w.started_at)},
          {"heartbeat_at", format_timestamp(w.heartbeat_at)},
          {"alive", v.alive},
          {"running_jobs", running}};
}

json queue_to_json(const QueueRecord& q) {
  return {{"name", text_json(q.name)},
          {"paused", q.paused},
          {"pending", q.pending},
          {"running", q.running}};
}

json limit_to_json(const TypeLimit& l) {
  json row = {{"job_type", text_json(l.job_type)},
              {"max_running", opt(l.max_running)},
              {"rate_limit", nullptr},
              {"rate_period_ms", nullptr},
              {"per_group", l.per_group},
              {"running", l.running}};
  if (l.rate_limit) {
    row["rate_limit"] = *l.rate_limit;
    row["rate_period_ms"] =
        std::chrono::duration_cast<std::chrono::milliseconds>(l.rate_period).count();
  }
  return row;
}

json audit_to_json(const AuditRecord& a) {
  return {{"id", a.id},
          {"at", format_timestamp(a.at)},
          {"actor", text_json(a.actor)},
          {"action", text_json(a.action)},
          {"target", text_json(a.target)},
          {"detail", text_json(a.detail)}};
}

}  // namespace ergon::ops
