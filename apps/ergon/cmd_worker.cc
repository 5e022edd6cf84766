// ergon worker --config FILE — run a worker whose handlers are external commands, until
// SIGINT or SIGTERM (then stop gracefully).
#include <spdlog/spdlog.h>

#include <iostream>

#include "common.h"
#include "runtime/command_handler.h"

namespace ergon::cli {

void register_worker(CLI::App& app, Globals& g) {
  auto* cmd = app.add_subcommand("worker", "run a worker with the command handlers of a config");
  struct Args {
    std::string config;
    bool migrate = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--config", args->config, "JSON configuration file")->required();
  cmd->add_flag("--migrate", args->migrate, "create or upgrade the schema before starting");
  cmd->callback([&g, args] {
    Config config = load_config_file(args->config);
    if (config.handlers.empty()) {
      throw Error(ErrorCode::kConfig, args->config + ": no \"Handlers\": nothing to run");
    }
    std::string url = database_url(g, config.database);
    std::shared_ptr<Store> store;
    if (args->migrate) {
      store = open_store(url);
    } else {
      store = open_existing(url);
    }
    HandlerRegistry handlers;
    runtime::add_command_handlers(handlers, config);
    if (spdlog::get_level() > spdlog::level::info) spdlog::set_level(spdlog::level::info);
    JobsWorker worker(store, std::move(handlers), config.worker);
    worker.run_until_signal();
  });
}

}  // namespace ergon::cli
