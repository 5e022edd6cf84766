// core/log.h — logging a line about a job (see ergon/logging.h).
//
// log::job() writes "job <id> (<type>, attempt N): <message>" through spdlog and, for the JSON
// format's formatter, leaves the job's fields in a thread-local slot while the line is
// formatted (spdlog's default logger formats in the calling thread).
#pragma once

#include <spdlog/spdlog.h>

#include <string>
#include <string_view>

#include "ergon/types.h"

namespace ergon::log {

struct JobFields {
  std::string id;
  std::string_view type;
  int attempt = 0;
  std::string_view queue;  // empty: not known where the line is written
};

// The fields of the line being logged on this thread, or null.
const JobFields* current_job();

class ScopedJob {
 public:
  explicit ScopedJob(const JobFields& fields);
  ~ScopedJob();
  ScopedJob(const ScopedJob&) = delete;
  ScopedJob& operator=(const ScopedJob&) = delete;

 private:
  const JobFields* previous_;
};

// A line about the job `id` in `queue` (a field of the JSON form only; the text form names
// the job by id, type and attempt).
template <class... Args>
void job_in(spdlog::level::level_enum level, const JobId& id, std::string_view type, int attempt,
            std::string_view queue, fmt::format_string<Args...> format, Args&&... args) {
  if (!spdlog::should_log(level)) return;
  JobFields fields{id.to_string(), type, attempt, queue};
  ScopedJob scope(fields);
  spdlog::log(level, "job {} ({}, attempt {}): {}", fields.id, type, attempt,
              fmt::format(format, std::forward<Args>(args)...));
}

template <class... Args>
void job(spdlog::level::level_enum level, const JobId& id, std::string_view type, int attempt,
         fmt::format_string<Args...> format, Args&&... args) {
  job_in(level, id, type, attempt, {}, format, std::forward<Args>(args)...);
}

}  // namespace ergon::log
