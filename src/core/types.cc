#include "ergon/types.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <mutex>
#include <random>

#include "ergon/error.h"
#include "ergon/options.h"
#include "ergon/store.h"
#include "ergon/time_range.h"

namespace ergon {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

std::string_view to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return "invalid_argument";
    case ErrorCode::kNotFound:
      return "not_found";
    case ErrorCode::kStore:
      return "store";
    case ErrorCode::kSchema:
      return "schema";
    case ErrorCode::kConfig:
      return "config";
    case ErrorCode::kNoTransaction:
      return "no_transaction";
    case ErrorCode::kUnsupported:
      return "unsupported";
  }
  return "unknown";
}

JobId JobId::generate(TimePoint now) {
  // UUIDv7 (RFC 9562 section 5.7): 48 bits of Unix milliseconds, then 12 bits that we fill
  // with a counter so ids made in the same millisecond stay ordered (method 1 of section
  // 6.2), then 62 random bits. The last (ms, counter) pair is process-wide state.
  static std::mutex mu;
  static std::uint64_t last_ms = 0;
  static std::uint32_t counter = 0;
  thread_local std::mt19937_64 rng{std::random_device{}()};

  auto ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count());
  std::uint32_t seq;
  {
    std::lock_guard lock(mu);
    if (ms <= last_ms) {
      // Same millisecond, or the clock went back: keep counting from the last id.
      if (++counter > 0xFFF) {
        ++last_ms;
        counter = 0;
      }
      ms = last_ms;
    } else {
      last_ms = ms;
      counter = static_cast<std::uint32_t>(rng() & 0x3FF);  // random start, room to count
    }
    seq = counter;
  }
  std::uint64_t rand_b = rng();
  std::array<std::uint8_t, 16> b{};
  for (int i = 0; i < 6; ++i) b[i] = static_cast<std::uint8_t>(ms >> (40 - 8 * i));
  b[6] = static_cast<std::uint8_t>(0x70 | ((seq >> 8) & 0x0F));
  b[7] = static_cast<std::uint8_t>(seq & 0xFF);
  for (int i = 8; i < 16; ++i) b[i] = static_cast<std::uint8_t>(rand_b >> (8 * (i - 8)));
  b[8] = static_cast<std::uint8_t>(0x80 | (b[8] & 0x3F));  // RFC 4122 variant
  return JobId(b);
}

std::optional<JobId> JobId::parse(std::string_view text) {
  if (text.size() != 36) return std::nullopt;
  std::array<std::uint8_t, 16> b{};
  int byte = 0;
  for (std::size_t i = 0; i < 36;) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i] != '-') return std::nullopt;
      ++i;
      continue;
    }
    int hi = hex_value(text[i]);
    int lo = hex_value(text[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    b[byte++] = static_cast<std::uint8_t>(hi * 16 + lo);
    i += 2;
  }
  return JobId(b);
}

std::string JobId::to_string() const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += kHex[bytes_[i] >> 4];
    out += kHex[bytes_[i] & 0xF];
  }
  return out;
}

bool JobId::is_nil() const {
  return std::all_of(bytes_.begin(), bytes_.end(), [](std::uint8_t x) { return x == 0; });
}

std::string_view to_string(JobStatus status) {
  switch (status) {
    case JobStatus::kPending:
      return "Pending";
    case JobStatus::kRunning:
      return "Running";
    case JobStatus::kCompleted:
      return "Completed";
    case JobStatus::kFailed:
      return "Failed";
    case JobStatus::kCancelled:
      return "Cancelled";
  }
  return "Unknown";
}

std::string_view to_string(JobEvent::Kind kind) {
  switch (kind) {
    case JobEvent::Kind::kStarted:
      return "started";
    case JobEvent::Kind::kCompleted:
      return "completed";
    case JobEvent::Kind::kRetryScheduled:
      return "retry_scheduled";
    case JobEvent::Kind::kFailed:
      return "failed";
    case JobEvent::Kind::kReleased:
      return "released";
    case JobEvent::Kind::kFenced:
      return "fenced";
    case JobEvent::Kind::kCancelled:
      return "cancelled";
    case JobEvent::Kind::kRescued:
      return "rescued";
    case JobEvent::Kind::kSnoozed:
      return "snoozed";
  }
  return "unknown";
}

std::optional<JobStatus> parse_job_status(std::string_view text) {
  for (JobStatus s : {JobStatus::kPending, JobStatus::kRunning, JobStatus::kCompleted,
                      JobStatus::kFailed, JobStatus::kCancelled}) {
    if (iequals(text, to_string(s))) return s;
  }
  return std::nullopt;
}

std::string_view to_string(AttemptOutcome outcome) {
  switch (outcome) {
    case AttemptOutcome::kCompleted:
      return "completed";
    case AttemptOutcome::kFailed:
      return "failed";
    case AttemptOutcome::kRetried:
      return "retried";
    case AttemptOutcome::kRescued:
      return "rescued";
    case AttemptOutcome::kTimedOut:
      return "timed_out";
    case AttemptOutcome::kCancelled:
      return "cancelled";
    case AttemptOutcome::kSnoozed:
      return "snoozed";
    case AttemptOutcome::kReleased:
      return "released";
  }
  return "unknown";
}

std::optional<AttemptOutcome> parse_attempt_outcome(std::string_view text) {
  for (AttemptOutcome o :
       {AttemptOutcome::kCompleted, AttemptOutcome::kFailed, AttemptOutcome::kRetried,
        AttemptOutcome::kRescued, AttemptOutcome::kTimedOut, AttemptOutcome::kCancelled,
        AttemptOutcome::kSnoozed, AttemptOutcome::kReleased}) {
    if (text == to_string(o)) return o;
  }
  return std::nullopt;
}

std::string format_timestamp(TimePoint t) {
  using namespace std::chrono;
  auto us = floor<microseconds>(t);
  auto day = floor<days>(us);
  year_month_day ymd{day};
  hh_mm_ss<microseconds> hms{us - day};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%06lldZ", int(ymd.year()),
                unsigned(ymd.month()), unsigned(ymd.day()), int(hms.hours().count()),
                int(hms.minutes().count()), int(hms.seconds().count()),
                static_cast<long long>(hms.subseconds().count()));
  return buf;
}

std::optional<TimePoint> parse_timestamp(std::string_view s) {
  auto wide = parse_wide_timestamp(s);
  if (!wide) return std::nullopt;
  // Whole microseconds, as the stores keep them; rounded down in ticks first, so that an
  // instant just inside TimePoint's lower end cannot round out of it.
  return to_time_point(std::chrono::floor<std::chrono::microseconds>(*wide));
}

}  // namespace ergon
