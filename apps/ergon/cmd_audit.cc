// ergon audit — the audit log: who retried, deleted, cancelled, purged, paused what, and when.
#include <iostream>

#include "common.h"
#include "ops/render.h"

namespace ergon::cli {

void register_audit(CLI::App& app, Globals& g) {
  struct Args {
    int limit = 50;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("audit", "operators' actions, newest first");
  cmd->add_option("--limit", a->limit, "at most this many (1-10000, default 50)")
      ->check(CLI::Range(1, 10000));
  cmd->add_flag("--json", a->json, "print JSON");
  cmd->callback([&g, a] {
    auto records = ops::AuditLog(open_for_reading(database_url(g))).list(a->limit);
    if (a->json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& r : records) out.push_back(ops::audit_to_json(r));
      print_json(out);
      return;
    }
    std::printf("%-20s  %-16s  %-16s  %-40s  %s\n", "AT", "ACTOR", "ACTION", "TARGET", "DETAIL");
    for (const auto& r : records) {
      std::printf("%-20s  %-16s  %-16s  %-40s  %s\n", short_time(r.at).c_str(),
                  printable(r.actor).c_str(), printable(r.action).c_str(),
                  printable(r.target).c_str(), printable(r.detail).c_str());
    }
  });
}

}  // namespace ergon::cli
