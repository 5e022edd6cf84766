#include "support/test_backend.h"

namespace ergon::testing {

// The public API has an overload per native connection type; the backend decides which.
JobId start_job_tx(JobRunner& runner, AppConnection& conn, std::string_view job_type,
                   std::string_view job_data, const JobOptions& options) {
  if (conn.sqlite() != nullptr) {
    return runner.start_job_raw(conn.sqlite(), job_type, job_data, options);
  }
  return runner.start_job_raw(conn.postgres(), job_type, job_data, options);
}

void complete_in_transaction(JobContext& ctx, AppConnection& conn) {
  if (conn.sqlite() != nullptr) {
    ctx.complete_in_transaction(conn.sqlite());
  } else {
    ctx.complete_in_transaction(conn.postgres());
  }
}

}  // namespace ergon::testing
