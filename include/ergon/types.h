// ergon/types.h — small value types shared by the whole API: job ids, statuses, time.
//
// All of them are plain values; copy them freely across threads.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ergon {

// A point in time, UTC. Ergon stores timestamps with microsecond precision.
using TimePoint = std::chrono::system_clock::time_point;
using Duration = std::chrono::microseconds;

// A job's id: a UUIDv7 (RFC 9562), time-ordered so that new rows land at the end of indexes.
class JobId {
 public:
  JobId() = default;  // the nil UUID
  explicit JobId(const std::array<std::uint8_t, 16>& bytes) : bytes_(bytes) {}

  // A fresh UUIDv7 for `now`; ids made by one process are strictly increasing.
  static JobId generate(TimePoint now);
  // Parses the canonical 8-4-4-4-12 hex form (either case). Returns nullopt if malformed.
  static std::optional<JobId> parse(std::string_view text);

  [[nodiscard]] std::string to_string() const;  // lower-case canonical form
  [[nodiscard]] const std::array<std::uint8_t, 16>& bytes() const { return bytes_; }
  [[nodiscard]] bool is_nil() const;

  friend auto operator<=>(const JobId&, const JobId&) = default;

 private:
  std::array<std::uint8_t, 16> bytes_{};
};

// The job state machine (see ARCHITECTURE.md):
//   Pending -> Running -> Completed | Failed | Cancelled, and Running -> Pending on retry,
//   rescue and graceful-shutdown release.
enum class JobStatus { kPending, kRunning, kCompleted, kFailed, kCancelled };

// "Pending", "Running", ... exactly as stored in the `status` column.
std::string_view to_string(JobStatus status);
// Accepts the stored spelling, case-insensitively. nullopt for anything else.
std::optional<JobStatus> parse_job_status(std::string_view text);
[[nodiscard]] inline bool is_final(JobStatus s) {
  return s == JobStatus::kCompleted || s == JobStatus::kFailed || s == JobStatus::kCancelled;
}

// Timestamps as text: ISO-8601 UTC with microseconds, "2026-11-28T19:20:11.123456Z".
std::string format_timestamp(TimePoint t);
// Accepts ISO-8601 with 'Z' or a numeric offset (+01:00, +0100), optional fraction, and a date
// without time (midnight UTC). nullopt if malformed or outside TimePoint's range (time_range.h).
std::optional<TimePoint> parse_timestamp(std::string_view text);

}  // namespace ergon
