// ergon migrate — create or upgrade the schema.
#include <iostream>

#include "common.h"

namespace ergon::cli {

void register_migrate(CLI::App& app, Globals& g) {
  auto* cmd = app.add_subcommand("migrate", "create or upgrade the database schema");
  cmd->callback([&g] {
    StoreOptions o;
    // Open without touching the schema, then migrate explicitly to report what was applied.
    o.migrate = false;
    o.check_schema = false;
    auto store = open_store(database_url(g), o);
    auto applied = migrate(*store);
    if (applied.empty()) {
      std::cout << "schema is up to date\n";
    } else {
      for (int v : applied) std::cout << "applied migration " << v << "\n";
    }
  });
}

}  // namespace ergon::cli
