// core/config_reader.h — the reader behind ergon/config.h, for a program that adds sections of
// its own to the configuration file (the ergon CLI: commands/cli_config.h).
//
// One document is read in one pass: the environment overrides of every section first, then the
// library's sections (Database, JobsWorker, Messaging), then the program's (an Extension). One
// report lists every error of both, each with its key's path, in the order they were found, so
// that a file is checked as a whole whoever reads which part. Unknown keys are errors: the top
// level knows the library's sections and the extension's, nothing else.
//
// Internal to Ergon (nlohmann/json stays out of the public header). A Reader belongs to one
// parse on one thread.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ergon/config.h"

namespace ergon::config {

using nlohmann::json;

// The type of each key, for the checks and for reading environment overrides (which arrive as
// strings and are converted to the key's own type before the file's rules check them).
enum class Kind { kInt, kBool, kTimeSpan, kString, kStringList, kObject };
struct Key {
  const char* name;
  Kind kind;
};
using Keys = std::span<const Key>;
using Sections = std::span<const char* const>;

// Section and key names in environment variables match in any case, as .NET's configuration
// does.
bool iequals(std::string_view a, std::string_view b);

// Collects every error (with the key's path) instead of stopping at the first: `ergon config
// check` lists them all. A bad value reads as its default, so the checks after it still run.
class Reader {
 public:
  // The key paths set by environment variables, and the variables that set them.
  std::map<std::string, std::string> from_env;
  std::vector<std::string> errors;

  // An error at a key's path; names the variable when one set the key.
  void bad(const std::string& where, const std::string& what);
  // An error in an environment variable itself: its name, or a value not of its key's type.
  void bad_variable(const std::string& var, const std::string& what);

  // False (and an error) when `obj` is not an object; an error for each key not in `known`.
  bool check_keys(const json& obj, const std::string& where, Keys known);

  // obj[key] in the key's type, or `fallback` when it is missing (or wrong: then an error).
  Duration timespan(const json& obj, const std::string& where, const char* key, Duration fallback);
  int integer(const json& obj, const std::string& where, const char* key, int fallback, int min,
              int max);
  bool boolean(const json& obj, const std::string& where, const char* key, bool fallback);
  std::string string(const json& obj, const std::string& where, const char* key,
                     std::string fallback = {});

  // An override's value in the key's own type; false (and an error naming the variable) when
  // it cannot be one.
  bool convert(const std::string& var, const std::string& value, Kind kind, json& out);
  // Sets (*target)[key] from the variable `var`, the key being the one of `keys` named
  // `key_name` in any case; an error naming the variable when there is no such value key or
  // the value is not of its type. `target` is nullptr when the file holds something other than
  // an object there (the file's own check reports that); `path` is the target's key path.
  void override_key(const std::string& var, const std::string& value, Keys keys, json* target,
                    const std::string& path, const std::string& key_name);
};

// The object at doc[key], created if missing; nullptr when the file holds something else there
// (the file's own check reports that).
json* section(json& doc, const std::string& key);

// Sections that a program adds to the library's, read in the same pass.
class Extension {
 public:
  virtual ~Extension() = default;
  // The top-level keys it reads.
  virtual Keys sections() const = 0;
  // The sections its environment variables name (Section__...), in the order in which the
  // error about an unknown section lists them.
  virtual Sections env_sections() const = 0;
  // Applies the variable `var` (its name split at "__" into `parts`, parts[0] one of
  // env_sections()) to the file's document, or reports why it cannot.
  virtual void apply_override(Reader& r, json& doc, const std::string& var,
                              const std::string& value, const std::vector<std::string>& parts) = 0;
  // Reads its sections from the document (overrides applied), after the library's.
  virtual void read(Reader& r, const json& doc) = 0;
};

// What parse_config and load_config_file do, with the sections of `extension` (nullptr: none)
// read too.
Config parse(std::string_view json_text, const ConfigEnvironment& env, Extension* extension);
Config load_file(const std::string& path, const ConfigEnvironment& env, Extension* extension);
// What config_environment does, with the variables of `extra_sections` too.
ConfigEnvironment environment(Sections extra_sections);
// config_to_json's document before it is written out, for an extension to add its sections.
json to_json(const Config& config);

}  // namespace ergon::config
