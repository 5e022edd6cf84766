// ergon schedules list|add|remove|enable|disable|trigger — recurring jobs.
#include <iostream>

#include "common.h"

namespace ergon::cli {
namespace {

nlohmann::json to_json(const ScheduleRecord& s) {
  nlohmann::json data = nlohmann::json::parse(s.job_data, nullptr, false);
  return {{"id", s.id.to_string()},
          {"name", s.name},
          {"job_type", s.job_type},
          {"job_data", data.is_discarded() ? nlohmann::json(s.job_data) : data},
          {"cron_expression", s.cron_expression},
          {"with_seconds", s.with_seconds},
          {"time_zone", s.time_zone},
          {"next_run_time", format_timestamp(s.next_run_time)},
          {"last_run_time",
           s.last_run_time ? nlohmann::json(format_timestamp(*s.last_run_time)) : nullptr},
          {"is_enabled", s.is_enabled},
          {"misfire_policy", to_string(s.misfire)},
          {"misfire_limit", s.misfire_limit},
          {"overlap_policy", to_string(s.overlap)},
          {"last_job_id", s.last_job_id ? nlohmann::json(s.last_job_id->to_string()) : nullptr}};
}

void need(bool found, const std::string& name) {
  if (!found) throw Error(ErrorCode::kNotFound, "no schedule named '" + name + "'");
}

}  // namespace

void register_schedules(CLI::App& app, Globals& g) {
  auto* cmd = app.add_subcommand("schedules", "list and change recurring jobs");
  cmd->require_subcommand(1);

  auto json = std::make_shared<bool>(false);
  auto* list = cmd->add_subcommand("list", "list schedules");
  list->add_flag("--json", *json, "print JSON");
  list->callback([&g, json] {
    JobRunner runner(open_for_reading(database_url(g)));
    auto rows = runner.list_scheduled_jobs();
    if (*json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& s : rows) out.push_back(to_json(s));
      print_json(out);
      return;
    }
    std::printf("%-24s %-20s %-20s %-18s %-8s %-21s %s\n", "NAME", "TYPE", "EXPRESSION", "ZONE",
                "ENABLED", "NEXT", "LAST");
    for (const auto& s : rows) {
      std::printf("%-24s %-20s %-20s %-18s %-8s %-21s %s\n", printable(s.name).c_str(),
                  printable(s.job_type).c_str(), printable(s.cron_expression).c_str(),
                  printable(s.time_zone).c_str(), s.is_enabled ? "yes" : "no",
                  short_time(s.next_run_time).c_str(),
                  s.last_run_time ? short_time(*s.last_run_time).c_str() : "-");
    }
  });

  struct AddArgs {
    std::string name, type, expr, data = "{}", tz = "UTC", misfire = "run_once", overlap = "allow",
                                  queue = "default";
    bool seconds = false;
    int misfire_limit = 10, priority = 0, max_attempts = 0;
  };
  auto a = std::make_shared<AddArgs>();
  auto* add = cmd->add_subcommand("add", "add or update a schedule (keyed by NAME)");
  add->add_option("name", a->name, "schedule name")->required();
  add->add_option("type", a->type, "job type")->required();
  add->add_option("expression", a->expr, "cron expression")->required();
  add->add_option("json", a->data, "job data as JSON (default {})");
  add->add_option("--tz", a->tz, "IANA time zone (default UTC)");
  add->add_flag("--seconds", a->seconds, "the expression has 6 fields, seconds first");
  add->add_option("--misfire", a->misfire, "run_once (default), skip or run_all");
  add->add_option("--misfire-limit", a->misfire_limit, "run_all: at most this many")
      ->check(CLI::Range(1, 100000));
  add->add_option("--overlap", a->overlap, "allow (default) or skip");
  add->add_option("--queue", a->queue, "queue of the jobs");
  add->add_option("--priority", a->priority, "priority of the jobs");
  add->add_option("--max-attempts", a->max_attempts, "attempts per job")
      ->check(CLI::Range(1, 1000000));
  add->callback([&g, a] {
    ScheduleOptions o;
    o.name = a->name;
    o.time_zone = a->tz;
    o.with_seconds = a->seconds;
    auto misfire = parse_misfire_policy(a->misfire);
    if (!misfire) throw CLI::ValidationError("--misfire", "must be run_once, skip or run_all");
    auto overlap = parse_overlap_policy(a->overlap);
    if (!overlap) throw CLI::ValidationError("--overlap", "must be allow or skip");
    o.misfire = *misfire;
    o.misfire_limit = a->misfire_limit;
    o.overlap = *overlap;
    o.queue = a->queue;
    o.priority = a->priority;
    if (a->max_attempts > 0) o.max_attempts = a->max_attempts;
    auto store = open_existing(database_url(g));
    JobRunner runner(store);
    runner.add_or_update_scheduled_job_raw(a->type, a->data, a->expr, o);
    audit(store, "schedule.add", a->name, a->expr);
    auto s = runner.get_scheduled_job(a->name);
    std::cout << "schedule '" << a->name << "' next runs at " << format_timestamp(s->next_run_time)
              << "\n";
  });

  auto name = std::make_shared<std::string>();
  auto simple = [&](const char* verb, const char* help) {
    auto* sub = cmd->add_subcommand(verb, help);
    sub->add_option("name", *name, "schedule name")->required();
    return sub;
  };
  simple("remove", "remove a schedule")->callback([&g, name] {
    auto store = open_existing(database_url(g));
    JobRunner runner(store);
    need(runner.remove_scheduled_job(*name), *name);
    audit(store, "schedule.remove", *name);
  });
  simple("enable", "enable a schedule")->callback([&g, name] {
    auto store = open_existing(database_url(g));
    JobRunner runner(store);
    need(runner.set_scheduled_job_enabled(*name, true), *name);
    audit(store, "schedule.enable", *name);
  });
  simple("disable", "disable a schedule")->callback([&g, name] {
    auto store = open_existing(database_url(g));
    JobRunner runner(store);
    need(runner.set_scheduled_job_enabled(*name, false), *name);
    audit(store, "schedule.disable", *name);
  });
  simple("trigger", "enqueue the schedule's job now; prints its id")->callback([&g, name] {
    auto store = open_existing(database_url(g));
    JobId id = JobRunner(store).trigger_scheduled_job(*name);
    audit(store, "schedule.trigger", *name, id.to_string());
    std::cout << id.to_string() << "\n";
  });
}

}  // namespace ergon::cli
