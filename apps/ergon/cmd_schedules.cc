// ergon schedules list|add|remove|enable|disable|trigger — recurring jobs.
#include <iostream>

#include "common.h"
#include "ops/render.h"
#include "ops/schedules.h"

namespace ergon::cli {

void register_schedules(CLI::App& app, Globals& g) {
  auto* cmd = app.add_subcommand("schedules", "list and change recurring jobs");
  cmd->require_subcommand(1);

  auto json = std::make_shared<bool>(false);
  auto* list = cmd->add_subcommand("list", "list schedules");
  list->add_flag("--json", *json, "print JSON");
  list->callback([&g, json] {
    auto rows = ops::Schedules(open_for_reading(database_url(g))).list();
    if (*json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& s : rows) out.push_back(ops::schedule_to_json(s));
      print_json(out);
      return;
    }
    std::printf("%-24s %-20s %-20s %-18s %-8s %-21s %-21s %-30s %s\n", "NAME", "TYPE", "EXPRESSION",
                "ZONE", "ENABLED", "NEXT", "LAST", "TAGS", "META");
    for (const auto& s : rows) {
      std::string tags;
      for (const auto& t : s.tags) tags += (tags.empty() ? "" : ",") + t;
      std::printf("%-24s %-20s %-20s %-18s %-8s %-21s %-21s %-30s %s\n", printable(s.name).c_str(),
                  printable(s.job_type).c_str(), printable(s.cron_expression).c_str(),
                  printable(s.time_zone).c_str(), s.is_enabled ? "yes" : "no",
                  short_time(s.next_run_time).c_str(),
                  s.last_run_time ? short_time(*s.last_run_time).c_str() : "-",
                  tags.empty() ? "-" : cut(tags, 30).c_str(),
                  cut(s.meta.value_or("-"), 60).c_str());
    }
  });

  struct AddArgs {
    std::string name, type, expr, data = "{}", tz = "UTC", misfire = "run_once", overlap = "allow",
                                  queue = "default";
    bool seconds = false;
    int misfire_limit = 10, priority = 0, max_attempts = 0;
    std::vector<std::string> tags;
    std::string meta;
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
  add_tag_meta_options(add, a->tags, a->meta, "each job it starts");
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
    o.tags = a->tags;
    o.meta = a->meta;
    auto change = ops::Schedules(open_existing(database_url(g)))
                      .add(a->type, a->data, a->expr, o, cli_actor());
    require_audited(change.audited);
    if (!change.schedule) throw Error(ErrorCode::kNotFound, "no schedule named '" + a->name + "'");
    std::cout << "schedule '" << a->name << "' next runs at "
              << format_timestamp(change.schedule->next_run_time) << "\n";
  });

  auto name = std::make_shared<std::string>();
  auto simple = [&](const char* verb, const char* help) {
    auto* sub = cmd->add_subcommand(verb, help);
    sub->add_option("name", *name, "schedule name")->required();
    return sub;
  };
  simple("remove", "remove a schedule")->callback([&g, name] {
    require_audited(ops::Schedules(open_existing(database_url(g))).remove(*name, cli_actor()));
  });
  for (bool enable : {true, false}) {
    simple(enable ? "enable" : "disable", enable ? "enable a schedule" : "disable a schedule")
        ->callback([&g, name, enable] {
          require_audited(ops::Schedules(open_existing(database_url(g)))
                              .set_enabled(*name, enable, cli_actor()));
        });
  }
  simple("trigger", "enqueue the schedule's job now; prints its id")->callback([&g, name] {
    auto triggered = ops::Schedules(open_existing(database_url(g))).trigger(*name, cli_actor());
    require_audited(triggered.audited);
    std::cout << triggered.job_id.to_string() << "\n";
  });
}

}  // namespace ergon::cli
