#include "core/config_reader.h"

#include <strings.h>

#include <charconv>
#include <cstring>

#include "ergon/error.h"

namespace ergon::config {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

void Reader::bad(const std::string& where, const std::string& what) {
  std::string msg = where + ": " + what;
  if (auto it = from_env.find(where); it != from_env.end()) {
    msg += " (set by environment variable " + it->second + ")";
  }
  errors.push_back(std::move(msg));
}

void Reader::bad_variable(const std::string& var, const std::string& what) {
  errors.push_back(var + ": " + what);
}

bool Reader::check_keys(const json& obj, const std::string& where, Keys known) {
  if (!obj.is_object()) {
    bad(where, "must be a JSON object");
    return false;
  }
  for (const auto& [key, value] : obj.items()) {
    bool found = false;
    for (const Key& k : known) found = found || key == k.name;
    if (!found) bad(where.empty() ? key : where + "." + key, "unknown key '" + key + "'");
  }
  return true;
}

Duration Reader::timespan(const json& obj, const std::string& where, const char* key,
                          Duration fallback) {
  auto it = obj.find(key);
  if (it == obj.end()) return fallback;
  std::string path = where + "." + key;
  if (!it->is_string()) {
    bad(path, "expected a TimeSpan string like \"00:01:00\"");
    return fallback;
  }
  try {
    return parse_timespan(it->get<std::string>());
  } catch (const Error& e) {
    bad(path, e.what());
    return fallback;
  }
}

int Reader::integer(const json& obj, const std::string& where, const char* key, int fallback,
                    int min, int max) {
  auto it = obj.find(key);
  if (it == obj.end()) return fallback;
  std::string path = where + "." + key;
  if (!it->is_number_integer()) {
    bad(path, "expected an integer");
    return fallback;
  }
  auto v = it->get<long long>();
  if (it->is_number_unsigned() && it->get<unsigned long long>() > 1'000'000'000ULL) v = max + 1LL;
  if (v < min || v > max) {
    bad(path, "must be between " + std::to_string(min) + " and " + std::to_string(max));
    return fallback;
  }
  return static_cast<int>(v);
}

bool Reader::boolean(const json& obj, const std::string& where, const char* key, bool fallback) {
  auto it = obj.find(key);
  if (it == obj.end()) return fallback;
  if (!it->is_boolean()) {
    bad(where + "." + key, "expected true or false");
    return fallback;
  }
  return it->get<bool>();
}

std::string Reader::string(const json& obj, const std::string& where, const char* key,
                           std::string fallback) {
  auto it = obj.find(key);
  if (it == obj.end()) return fallback;
  if (!it->is_string()) {
    bad(where.empty() ? key : where + "." + key, "expected a string");
    return fallback;
  }
  return it->get<std::string>();
}

bool Reader::convert(const std::string& var, const std::string& value, Kind kind, json& out) {
  switch (kind) {
    case Kind::kInt: {
      long long v = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
      if (ec != std::errc() || end != value.data() + value.size()) {
        errors.push_back(var + "=" + value + ": expected an integer");
        return false;
      }
      out = v;
      return true;
    }
    case Kind::kBool:
      if (iequals(value, "true") || iequals(value, "false")) {
        out = iequals(value, "true");
        return true;
      }
      errors.push_back(var + "=" + value + ": expected true or false");
      return false;
    case Kind::kTimeSpan:
      try {
        (void)parse_timespan(value);
      } catch (const Error& e) {
        errors.push_back(var + "=" + value + ": " + e.what());
        return false;
      }
      out = value;
      return true;
    case Kind::kString:
      out = value;
      return true;
    case Kind::kStringList: {
      // A JSON array, or a comma-separated list ("mail,reports").
      if (!value.empty() && value.front() == '[') {
        out = json::parse(value, nullptr, false);
        if (out.is_discarded() || !out.is_array()) {
          bad_variable(var, "expected a JSON array of strings or a comma-separated list");
          return false;
        }
        return true;
      }
      out = json::array();
      std::string_view rest = value;
      while (!rest.empty()) {
        auto comma = rest.find(',');
        std::string_view item = rest.substr(0, comma);
        while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
        while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
        out.push_back(std::string(item));
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      }
      return true;
    }
    case Kind::kObject:
      break;
  }
  bad_variable(var, "names a section, not a value");
  return false;
}

void Reader::override_key(const std::string& var, const std::string& value, Keys keys, json* target,
                          const std::string& path, const std::string& key_name) {
  const Key* key = nullptr;
  for (const Key& k : keys) {
    if (iequals(key_name, k.name)) key = &k;
  }
  if (key == nullptr || key->kind == Kind::kObject) {
    bad_variable(var, "unknown key '" + key_name + "' in " + path);
    return;
  }
  json converted;
  if (!convert(var, value, key->kind, converted) || target == nullptr) return;
  (*target)[key->name] = converted;
  from_env[path + "." + key->name] = var;
}

json* section(json& doc, const std::string& key) {
  if (!doc.contains(key)) doc[key] = json::object();
  json& s = doc[key];
  return s.is_object() ? &s : nullptr;
}

}  // namespace ergon::config
