// dashboard/api.h — the dashboard's JSON API, apart from HTTP: each method takes the request's
// parameters (query string or JSON body) and returns the JSON answer, or throws ApiError with
// the HTTP status and a message for the person who sent it.
//
// The actions and the JSON of what they show are the operations layer's (src/ops), shared with
// the CLI; this file adds HTTP's side: parameters, bodies and statuses.
//
// Validation is strict: unknown parameters, malformed ids, statuses, times and page sizes are
// 400s; ids that name nothing are 404s. ergon::Error from the store maps to 400 (invalid
// argument), 404 (not found), 501 (the store lacks the operation) or 503 (the database failed).
//
// Thread-safety: an Api is shared by the server's threads; it holds no mutable state.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "ops/audit.h"
#include "ops/jobs.h"
#include "ops/queues.h"
#include "ops/schedules.h"
#include "ops/stats.h"
#include "ops/workers.h"

namespace ergon::dashboard {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, const std::string& message) : std::runtime_error(message), status_(status) {}
  [[nodiscard]] int status() const { return status_; }

 private:
  int status_;
};

using Params = std::multimap<std::string, std::string>;

// Page sizes the API accepts (jobs list, audit log).
inline constexpr int kMaxPageSize = 1000;
inline constexpr int kDefaultPageSize = 50;
// A worker whose heartbeat is older than this is not counted as alive.
inline constexpr Duration kWorkerAliveWindow = ops::kAliveWithin;

class Api {
 public:
  explicit Api(const std::shared_ptr<Store>& store)
      : jobs_(store),
        schedules_(store),
        queues_(store),
        workers_(store),
        stats_(store),
        audit_(store) {}

  nlohmann::json overview();
  nlohmann::json jobs(const Params& query);
  nlohmann::json job(const std::string& id);
  // action: retry, cancel, delete. `actor` goes to the audit log.
  nlohmann::json job_action(const std::string& id, const std::string& action,
                            const std::string& actor);
  // action: retry, delete; body: a JSON object with the filter (at least one condition).
  nlohmann::json bulk_action(const std::string& action, const std::string& body,
                             const std::string& actor);
  nlohmann::json schedules();
  // action: enable, disable, trigger, edit; body {"name": ..., ["expression", "time_zone",
  // "with_seconds" for edit]}.
  nlohmann::json schedule_action(const std::string& action, const std::string& body,
                                 const std::string& actor);
  nlohmann::json workers();
  nlohmann::json queues();
  // action: pause, resume; body {"name": ...}.
  nlohmann::json queue_action(const std::string& action, const std::string& body,
                              const std::string& actor);
  nlohmann::json audit(const Params& query);

  // Parsers, public for the tests.
  static JobFilter parse_filter(const Params& query, bool paged);
  static JobId parse_id(const std::string& text);

 private:
  ops::Jobs jobs_;
  ops::Schedules schedules_;
  ops::Queues queues_;
  ops::Workers workers_;
  ops::Stats stats_;
  ops::AuditLog audit_;
};

// Maps an exception from the store to an ApiError (never lets one escape as a 500 unless it
// is a bug).
[[noreturn]] void rethrow_as_api_error();

}  // namespace ergon::dashboard
