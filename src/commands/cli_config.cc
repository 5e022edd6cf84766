#include "commands/cli_config.h"

#include <algorithm>

#include "core/config_reader.h"
#include "ergon/error.h"
#include "store/store.h"

namespace ergon::commands {
namespace {

using config::iequals;
using config::json;
using config::Key;
using config::Keys;
using config::Kind;
using config::Reader;
using config::section;

constexpr Key kSections[] = {{"Handlers", Kind::kObject},
                             {"Logging", Kind::kObject},
                             {"Dashboard", Kind::kObject},
                             {"Limits", Kind::kObject}};
// The sections environment variables may name (Limits has no overrides), in the order the
// error about an unknown section lists them after the library's.
constexpr const char* kEnvSections[] = {"Handlers", "Logging", "Dashboard"};
constexpr Key kLimitKeys[] = {{"MaxRunning", Kind::kInt},
                              {"RateLimit", Kind::kInt},
                              {"RatePeriod", Kind::kTimeSpan},
                              {"PerGroup", Kind::kBool}};
constexpr Key kLoggingKeys[] = {{"Format", Kind::kString}, {"Level", Kind::kString}};
constexpr Key kDashboardKeys[] = {
    {"Listen", Kind::kString}, {"Token", Kind::kString}, {"ReadOnly", Kind::kBool}};
constexpr Key kHandlerKeys[] = {{"command", Kind::kStringList},
                                {"timeout", Kind::kTimeSpan},
                                {"env", Kind::kObject},
                                {"workingDirectory", Kind::kString},
                                {"maxAttempts", Kind::kInt}};

CommandHandlerConfig read_handler(Reader& r, const std::string& type, const json& j) {
  const std::string w = "Handlers." + type;
  CommandHandlerConfig h;
  if (!r.check_keys(j, w, kHandlerKeys)) return h;
  auto cmd = j.find("command");
  if (cmd == j.end()) {
    r.bad(w, "missing \"command\"");
  } else if (cmd->is_string()) {
    h.command.push_back(cmd->get<std::string>());
  } else if (cmd->is_array() &&
             std::all_of(cmd->begin(), cmd->end(), [](const json& a) { return a.is_string(); })) {
    for (const auto& a : *cmd) h.command.push_back(a.get<std::string>());
  } else {
    r.bad(w + ".command", "expected an array of strings");
  }
  if (cmd != j.end() && (h.command.empty() || h.command[0].empty()) &&
      (cmd->is_string() || cmd->is_array())) {
    r.bad(w + ".command", "must not be empty");
  }
  if (j.contains("timeout")) {
    h.timeout = r.timespan(j, w, "timeout", std::chrono::seconds(1));
    if (h.timeout->count() == 0) r.bad(w + ".timeout", "must be greater than zero");
  }
  if (auto env = j.find("env"); env != j.end()) {
    if (!env->is_object()) {
      r.bad(w + ".env", "expected an object of strings");
    } else {
      for (const auto& [k, v] : env->items()) {
        if (!v.is_string()) {
          r.bad(w + ".env." + k, "expected a string");
        } else if (k.empty() || k.find('=') != std::string::npos) {
          r.bad(w + ".env", "bad name '" + k + "'");
        } else {
          h.env[k] = v.get<std::string>();
        }
      }
    }
  }
  h.working_directory = r.string(j, w, "workingDirectory");
  if (j.contains("maxAttempts")) h.max_attempts = r.integer(j, w, "maxAttempts", 1, 1, 1000000);
  return h;
}

std::optional<TypeLimit> read_limit(Reader& r, const std::string& type, const json& j) {
  const std::string w = "Limits." + type;
  if (!r.check_keys(j, w, kLimitKeys)) return std::nullopt;
  std::size_t errors_before = r.errors.size();
  TypeLimit l;
  l.job_type = type;
  if (j.contains("MaxRunning")) l.max_running = r.integer(j, w, "MaxRunning", 0, 0, 1000000);
  if (j.contains("RateLimit")) {
    l.rate_limit = r.integer(j, w, "RateLimit", 0, 0, 1000000);
    if (!j.contains("RatePeriod")) r.bad(w, "RateLimit needs a RatePeriod");
  } else if (j.contains("RatePeriod")) {
    r.bad(w, "RatePeriod needs a RateLimit");
  }
  l.rate_period = r.timespan(j, w, "RatePeriod", Duration::zero());
  l.per_group = r.boolean(j, w, "PerGroup", false);
  if (r.errors.size() != errors_before) return std::nullopt;
  try {
    check_type_limit(l);
  } catch (const Error& e) {
    r.bad(w, e.what());
    return std::nullopt;
  }
  return l;
}

void read_logging(Reader& r, const json& l, LogOptions& out) {
  if (!r.check_keys(l, "Logging", kLoggingKeys)) return;
  if (l.contains("Format")) {
    std::string f = r.string(l, "Logging", "Format");
    if (auto format = parse_log_format(f)) {
      out.format = *format;
    } else if (l["Format"].is_string()) {
      r.bad("Logging.Format", "expected \"text\" or \"json\", got \"" + f + "\"");
    }
  }
  if (l.contains("Level")) {
    std::string level = r.string(l, "Logging", "Level");
    if (is_log_level(level)) {
      out.level = level;
    } else if (l["Level"].is_string()) {
      r.bad("Logging.Level",
            "expected trace, debug, info, warning, error, critical or off, got \"" + level + "\"");
    }
  }
}

void read_dashboard(Reader& r, const json& d, std::optional<DashboardConfig>& out) {
  if (!r.check_keys(d, "Dashboard", kDashboardKeys)) return;
  DashboardConfig dc;
  dc.listen = r.string(d, "Dashboard", "Listen");
  dc.token = r.string(d, "Dashboard", "Token");
  dc.read_only = r.boolean(d, "Dashboard", "ReadOnly", false);
  if (dc.listen.empty() && d.contains("Listen") && d["Listen"].is_string()) {
    r.bad("Dashboard.Listen", "must not be empty (ADDR:PORT)");
  }
  out = dc;
}

void read_limits(Reader& r, const json& l, std::vector<TypeLimit>& out) {
  if (!l.is_object()) {
    r.bad("Limits", "must be an object keyed by job type");
    return;
  }
  for (const auto& [type, spec] : l.items()) {
    if (auto limit = read_limit(r, type, spec)) out.push_back(std::move(*limit));
  }
}

void read_handlers(Reader& r, const json& h, std::map<std::string, CommandHandlerConfig>& out) {
  if (!h.is_object()) {
    r.bad("Handlers", "must be an object keyed by job type");
    return;
  }
  for (const auto& [type, spec] : h.items()) {
    if (type.empty()) {
      r.bad("Handlers", "a job type name is empty");
      continue;
    }
    out.emplace(type, read_handler(r, type, spec));
  }
}

// The CLI's sections, read in the library's pass (core/config_reader.h) into `out`.
class CliSections final : public config::Extension {
 public:
  explicit CliSections(CliConfig& out) : out_(out) {}

  Keys sections() const override { return kSections; }
  config::Sections env_sections() const override { return kEnvSections; }

  // Handlers__TYPE__key, Handlers__TYPE__env__NAME, Logging__Key and Dashboard__Key; job types
  // as written.
  void apply_override(Reader& r, json& doc, const std::string& var, const std::string& value,
                      const std::vector<std::string>& parts) override {
    if (iequals(parts[0], "Handlers")) {
      if (parts.size() == 4 && iequals(parts[2], "env")) {
        json* handlers = section(doc, "Handlers");
        json* h = handlers ? section(*handlers, parts[1]) : nullptr;
        json* e = h ? section(*h, "env") : nullptr;
        if (e) {
          (*e)[parts[3]] = value;
          r.from_env["Handlers." + parts[1] + ".env." + parts[3]] = var;
        }
        return;
      }
      if (parts.size() != 3 || parts[1].empty()) {
        r.bad_variable(var, "expected Handlers__TYPE__key or Handlers__TYPE__env__NAME");
        return;
      }
      json* handlers = section(doc, "Handlers");
      json* target = handlers ? section(*handlers, parts[1]) : nullptr;
      r.override_key(var, value, kHandlerKeys, target, "Handlers." + parts[1], parts[2]);
      return;
    }
    const bool logging = iequals(parts[0], "Logging");
    if (parts.size() != 2) {
      r.bad_variable(var, logging ? "expected Logging__Key" : "expected Dashboard__Key");
      return;
    }
    const std::string path = logging ? "Logging" : "Dashboard";
    r.override_key(var, value, logging ? Keys(kLoggingKeys) : Keys(kDashboardKeys),
                   section(doc, path), path, parts[1]);
  }

  void read(Reader& r, const json& j) override {
    if (auto l = j.find("Logging"); l != j.end()) read_logging(r, *l, out_.logging);
    if (auto d = j.find("Dashboard"); d != j.end()) read_dashboard(r, *d, out_.dashboard);
    if (auto l = j.find("Limits"); l != j.end()) read_limits(r, *l, out_.limits);
    if (auto h = j.find("Handlers"); h != j.end()) read_handlers(r, *h, out_.handlers);
  }

 private:
  CliConfig& out_;
};

}  // namespace

ConfigEnvironment cli_config_environment() { return config::environment(kEnvSections); }

CliConfig parse_cli_config(std::string_view json_text, const ConfigEnvironment& env) {
  CliConfig c;
  CliSections sections(c);
  static_cast<Config&>(c) = config::parse(json_text, env, &sections);
  return c;
}

CliConfig load_cli_config_file(const std::string& path) {
  return load_cli_config_file(path, cli_config_environment());
}

CliConfig load_cli_config_file(const std::string& path, const ConfigEnvironment& env) {
  CliConfig c;
  CliSections sections(c);
  static_cast<Config&>(c) = config::load_file(path, env, &sections);
  return c;
}

std::string cli_config_to_json(const CliConfig& c) {
  json out = config::to_json(c);
  auto ts = [](Duration d) { return format_timespan(d); };
  out["Logging"] = {{"Format", c.logging.format == LogFormat::kJson ? "json" : "text"},
                    {"Level", c.logging.level}};
  if (c.dashboard) {
    out["Dashboard"] = {{"Listen", c.dashboard->listen},
                        {"Token", c.dashboard->token.empty() ? "" : "***"},
                        {"ReadOnly", c.dashboard->read_only}};
  }
  if (!c.limits.empty()) {
    json limits = json::object();
    for (const auto& l : c.limits) {
      json lj = {{"PerGroup", l.per_group}};
      if (l.max_running) lj["MaxRunning"] = *l.max_running;
      if (l.rate_limit) {
        lj["RateLimit"] = *l.rate_limit;
        lj["RatePeriod"] = ts(l.rate_period);
      }
      limits[l.job_type] = lj;
    }
    out["Limits"] = limits;
  }
  json handlers = json::object();
  for (const auto& [type, h] : c.handlers) {
    json hj = {{"command", h.command}, {"env", h.env}, {"workingDirectory", h.working_directory}};
    if (h.timeout) hj["timeout"] = ts(*h.timeout);
    if (h.max_attempts) hj["maxAttempts"] = *h.max_attempts;
    handlers[type] = hj;
  }
  out["Handlers"] = handlers;
  return out.dump(2);
}

}  // namespace ergon::commands
