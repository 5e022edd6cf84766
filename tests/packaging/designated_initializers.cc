// Compiled by the install check (scripts/test.sh) against the installed headers with
// -Wall -Wextra -Werror -fsyntax-only: every option struct of include/ergon/ accepts a
// designated initializer that names one member, so each other member needs a default member
// initializer (GCC's -Wmissing-field-initializers). A member added without one fails here.
#include <chrono>

#include "ergon/config.h"
#include "ergon/cron.h"
#include "ergon/dashboard.h"
#include "ergon/ergon.h"
#include "ergon/logging.h"

namespace {

[[maybe_unused]] const ergon::JobOptions job{.priority = 1};
[[maybe_unused]] const ergon::JobTypeOptions job_type{.max_attempts = 3};
[[maybe_unused]] const ergon::WorkerOptions worker{.max_concurrent_jobs = 2};
[[maybe_unused]] const ergon::MessagingOptions messaging{.relay = false};
[[maybe_unused]] const ergon::ScheduleOptions schedule{.with_seconds = true};
[[maybe_unused]] const ergon::StoreOptions store{.migrate = false};
[[maybe_unused]] const ergon::LogOptions log{.level = "debug"};
[[maybe_unused]] const ergon::Config config{.database = "sqlite:jobs.db"};
[[maybe_unused]] const ergon::JobFilter filter{.limit = 10};
[[maybe_unused]] const ergon::TypeLimit limit{.per_group = true};
[[maybe_unused]] const ergon::cron::ParseOptions parse{.day_match = ergon::cron::DayMatch::kOr};
[[maybe_unused]] const ergon::DashboardOptions dashboard{.port = 0};

}  // namespace
