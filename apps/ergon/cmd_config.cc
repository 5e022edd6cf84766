// ergon config check FILE — reads a configuration file as `ergon worker` would (environment
// overrides included) and prints the effective configuration, or every error in it.
#include <iostream>

#include "commands/cli_config.h"
#include "common.h"

namespace ergon::cli {
namespace {

// "JobsWorker.PollingInterval = 00:00:01", one line per key.
void print_flat(const nlohmann::json& j, const std::string& prefix) {
  if (j.is_object() && !j.empty()) {
    for (const auto& [key, value] : j.items()) {
      print_flat(value, prefix.empty() ? key : prefix + "." + key);
    }
    return;
  }
  std::cout << prefix << " = " << (j.is_string() ? j.get<std::string>() : j.dump()) << "\n";
}

}  // namespace

void register_config(CLI::App& app, Globals&) {
  auto* cmd = app.add_subcommand("config", "check configuration files");
  cmd->require_subcommand(1);
  struct Args {
    std::string file;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto* check = cmd->add_subcommand(
      "check", "print the effective configuration of FILE (with environment overrides)");
  check->add_option("file", a->file, "JSON configuration file")->required();
  check->add_flag("--json", a->json, "print JSON");
  check->callback([a] {
    // Throws Error(kConfig) listing every error.
    commands::CliConfig c = commands::load_cli_config_file(a->file);
    std::string text = commands::cli_config_to_json(c);
    if (a->json) {
      std::cout << text << "\n";
      return;
    }
    print_flat(nlohmann::json::parse(text), "");
  });
}

}  // namespace ergon::cli
