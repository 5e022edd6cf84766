#include "ergon/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "core/log.h"
#include "ergon/error.h"

namespace ergon {
namespace log {
namespace {
thread_local const JobFields* g_current = nullptr;
}  // namespace

const JobFields* current_job() { return g_current; }
ScopedJob::ScopedJob(const JobFields& fields) : previous_(g_current) { g_current = &fields; }
ScopedJob::~ScopedJob() { g_current = previous_; }

}  // namespace log

namespace {

void append(spdlog::memory_buf_t& out, std::string_view s) {
  out.append(s.data(), s.data() + s.size());
}

// A JSON string literal of `s`: quotes, backslashes and control characters escaped. Bytes
// that are not valid UTF-8 pass through (log text is the application's).
void append_json_string(spdlog::memory_buf_t& out, std::string_view s) {
  out.push_back('"');
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20) {
      static constexpr char kHex[] = "0123456789abcdef";
      switch (c) {
        case '\n':
          append(out, "\\n");
          break;
        case '\r':
          append(out, "\\r");
          break;
        case '\t':
          append(out, "\\t");
          break;
        default: {
          char esc[] = {'\\', 'u', '0', '0', kHex[u >> 4], kHex[u & 15]};
          out.append(esc, esc + 6);
        }
      }
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

bool is_control(char c) {
  auto u = static_cast<unsigned char>(c);
  return (u < 0x20 && c != '\t') || u == 0x7f;
}

// The text format: spdlog's pattern, with the message's control characters written as escapes
// (`\x1b`, `\n`). A handler's error text or a command's stderr tail cannot move the operator's
// cursor, clear the terminal or start a line that looks like another record.
class TextFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string_view payload(msg.payload.data(), msg.payload.size());
    if (std::none_of(payload.begin(), payload.end(), is_control)) {
      pattern_.format(msg, dest);
      return;
    }
    std::string escaped;
    for (char c : payload) {
      if (!is_control(c)) {
        escaped.push_back(c);
      } else if (c == '\n') {
        escaped += "\\n";
      } else {
        char esc[5];
        std::snprintf(esc, sizeof esc, "\\x%02x", static_cast<unsigned char>(c));
        escaped += esc;
      }
    }
    spdlog::details::log_msg copy = msg;
    copy.payload = spdlog::string_view_t(escaped.data(), escaped.size());
    pattern_.format(copy, dest);
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<TextFormatter>();
  }

 private:
  spdlog::pattern_formatter pattern_;
};

// One JSON object per line.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    using namespace std::chrono;
    auto t = msg.time;
    std::time_t secs = system_clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    auto micros = duration_cast<microseconds>(t.time_since_epoch()).count() % 1000000;
    char stamp[96];
    std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<long long>(micros));
    append(dest, "{\"time\":\"");
    append(dest, stamp);
    append(dest, "\",\"level\":");
    auto level = spdlog::level::to_string_view(msg.level);
    append_json_string(dest, std::string_view(level.data(), level.size()));
    append(dest, ",\"logger\":");
    append_json_string(dest, std::string_view(msg.logger_name.data(), msg.logger_name.size()));
    append(dest, ",\"thread\":");
    append(dest, std::to_string(msg.thread_id));
    append(dest, ",\"msg\":");
    append_json_string(dest, std::string_view(msg.payload.data(), msg.payload.size()));
    if (const auto* job = log::current_job()) {
      append(dest, ",\"job_id\":");
      append_json_string(dest, job->id);
      append(dest, ",\"job_type\":");
      append_json_string(dest, job->type);
      append(dest, ",\"attempt\":");
      append(dest, std::to_string(job->attempt));
      if (!job->queue.empty()) {
        append(dest, ",\"queue\":");
        append_json_string(dest, job->queue);
      }
    }
    append(dest, "}\n");
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::optional<spdlog::level::level_enum> parse_level(std::string_view text) {
  std::string s = lower(text);
  if (s == "warn") s = "warning";
  for (int i = 0; i < spdlog::level::n_levels; ++i) {
    auto l = static_cast<spdlog::level::level_enum>(i);
    auto name = spdlog::level::to_string_view(l);
    if (std::string_view(name.data(), name.size()) == s) return l;
  }
  return std::nullopt;
}

}  // namespace

std::optional<LogFormat> parse_log_format(std::string_view text) {
  std::string s = lower(text);
  if (s == "text") return LogFormat::kText;
  if (s == "json") return LogFormat::kJson;
  return std::nullopt;
}

bool is_log_level(std::string_view level) { return parse_level(level).has_value(); }

void configure_logging(const LogOptions& options) {
  auto level = parse_level(options.level);
  if (!level) {
    throw Error(ErrorCode::kInvalidArgument,
                "unknown log level '" + options.level +
                    "' (trace, debug, info, warning, error, critical, off)");
  }
  auto logger = spdlog::default_logger();
  if (options.format == LogFormat::kJson) {
    logger->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    logger->set_formatter(std::make_unique<TextFormatter>());
  }
  logger->set_level(*level);
}

}  // namespace ergon
