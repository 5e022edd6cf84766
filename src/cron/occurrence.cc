// Time zones and the mapping between local wall-clock matches and instants (Cronos's DST rules).
//
// The matcher finds local wall-clock times; a time zone maps each local time L to instants:
//   * unique L: one instant;
//   * L in a repeated (fall-back) period: two instants, the first pass (earlier offset, earlier
//     instant) and the second pass. Cronos fires the second pass only for "interval"
//     expressions, because a fixed time like 01:30 should run once a day, while `*/15` should
//     keep running every quarter of an hour through both passes;
//   * L in a skipped (spring-forward) period: no instant of its own. next() fires it once at the
//     instant the gap ends (so a daily 02:30 job still runs that day); previous() follows
//     Cronos 0.13.0, see map_previous().
#include <cctz/civil_time.h>
#include <cctz/time_zone.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "calendar.h"
#include "ergon/cron.h"
#include "schedule.h"

namespace ergon::cron {

struct TimeZone::Impl {
  std::string name;
  cctz::time_zone zone;
};

namespace {

using internal::LocalTime;
using Instant = std::int64_t;  // seconds since the Unix epoch
using Local = std::int64_t;    // local seconds, see calendar.h

constexpr Instant kMinInstant = internal::kMinLocalSeconds;  // 0001-01-01T00:00:00Z
constexpr Instant kMaxInstant = internal::kMaxLocalSeconds;  // 9999-12-31T23:59:59Z

cctz::time_point<cctz::seconds> to_tp(Instant s) {
  return cctz::time_point<cctz::seconds>(cctz::seconds(s));
}

Instant from_tp(const cctz::time_point<cctz::seconds>& tp) {
  return static_cast<Instant>(tp.time_since_epoch().count());
}

cctz::civil_second to_civil(Local l) {
  const LocalTime t = internal::from_local_seconds(l);
  return cctz::civil_second(t.year, t.month, t.day, t.hour, t.minute, t.second);
}

Local from_civil(const cctz::civil_second& cs) {
  return internal::to_local_seconds(
      LocalTime{cs.year(), cs.month(), cs.day(), cs.hour(), cs.minute(), cs.second()});
}

// A repeated (fall-back) period [start, end) in local time, and the transition instant: local
// times in it map to `local - pre_offset` (first pass) and `local - post_offset` (second pass).
struct Overlap {
  Local start;
  Local end;
  Instant transition;
};

class ZoneSearch {
 public:
  ZoneSearch(const cctz::time_zone& zone, const detail::Spec& spec)
      : zone_(zone), matcher_(spec), interval_((spec.flags & detail::Spec::kFlagInterval) != 0) {}

  Local local_of(Instant s) const { return from_civil(zone_.lookup(to_tp(s)).cs); }

  std::optional<Overlap> overlap_at(Local l) const {
    const cctz::time_zone::civil_lookup cl = zone_.lookup(to_civil(l));
    if (cl.kind != cctz::time_zone::civil_lookup::REPEATED) return std::nullopt;
    const Instant transition = from_tp(cl.trans);
    return Overlap{local_of(transition), local_of(transition - 1) + 1, transition};
  }

  // The first occurrence at or after `s`, or after it when `after` is set. Like Cronos, an
  // exclusive search starts one second after the *local* time of `s` (not at the local time of
  // s + 1 s): from the last second before a spring-forward gap, the times inside the gap are
  // still ahead and fire when the gap ends, while from the instant the gap ends they are not.
  std::optional<Instant> next(Instant s, bool after) const {
    const Local local_from = local_of(s);
    Local start = after ? local_from + 1 : local_from;
    if (const std::optional<Overlap> overlap = overlap_at(local_from)) {
      if (s < overlap->transition) {
        // First pass: matches up to the end of the overlap fire now, with the earlier offset.
        const std::optional<Local> l = matcher_.next_local(start);
        if (l && *l < overlap->end) return from_tp(zone_.lookup(to_civil(*l)).pre);
        start = overlap->start;
      }
      // Second pass: only interval expressions fire again.
      if (interval_) {
        const std::optional<Local> l = matcher_.next_local(start);
        if (l && *l < overlap->end) return from_tp(zone_.lookup(to_civil(*l)).post);
      }
      // The first local time after the overlap is strictly later than s in every case, so it
      // qualifies even for an exclusive search (Cronos would skip a match exactly there when
      // the search started exclusively inside the second pass; see docs/cron.md).
      start = overlap->end;
    }
    const std::optional<Local> l = matcher_.next_local(start);
    if (!l) return std::nullopt;
    return map_next(*l);
  }

  // The last occurrence at or before `s`, or before it when `before` is set; the mirror image
  // of next(), searching back from the local time of `s`.
  std::optional<Instant> previous(Instant s, bool before) const {
    const Local local_from = local_of(s);
    const Local start = before ? local_from - 1 : local_from;
    if (const std::optional<Overlap> overlap = overlap_at(local_from)) {
      Local first_pass_start = start;
      if (s >= overlap->transition) {
        // Second pass: interval expressions fire here too.
        if (interval_) {
          const std::optional<Local> l = matcher_.prev_local(start);
          if (l && *l >= overlap->start) return from_tp(zone_.lookup(to_civil(*l)).post);
        }
        // The whole first pass lies before s.
        first_pass_start = overlap->end - 1;
      }
      const std::optional<Local> l = matcher_.prev_local(first_pass_start);
      if (!l) return std::nullopt;
      if (*l >= overlap->start) return from_tp(zone_.lookup(to_civil(*l)).pre);
      return map_previous(*l);
    }
    const std::optional<Local> l = matcher_.prev_local(start);
    if (!l) return std::nullopt;
    return map_previous(*l);
  }

 private:
  // The instant of a local match found by a forward search from a non-repeated local time.
  Instant map_next(Local l) const {
    const cctz::time_zone::civil_lookup cl = zone_.lookup(to_civil(l));
    switch (cl.kind) {
      case cctz::time_zone::civil_lookup::SKIPPED:
        return from_tp(cl.trans);  // fires once, when the gap ends
      case cctz::time_zone::civil_lookup::REPEATED:
        return from_tp(std::min(cl.pre, cl.post));  // first pass
      case cctz::time_zone::civil_lookup::UNIQUE:
        break;
    }
    return from_tp(cl.pre);
  }

  // The instant of a local match found by a backward search from a non-repeated local time.
  Instant map_previous(Local l) const {
    const cctz::time_zone::civil_lookup cl = zone_.lookup(to_civil(l));
    switch (cl.kind) {
      case cctz::time_zone::civil_lookup::REPEATED:
        // Both passes lie before the search start; the later one fires only for intervals.
        return from_tp(interval_ ? std::max(cl.pre, cl.post) : std::min(cl.pre, cl.post));
      case cctz::time_zone::civil_lookup::SKIPPED: {
        // Cronos 0.13.0 moves a match inside a spring-forward gap back to the last second
        // before the gap when that second is on the same local day; when the gap starts at
        // local midnight it keeps the wall time, read with the post-gap offset. The
        // conformance vectors (and docs/cron.md) record this; it is not symmetric with next().
        const Instant transition = from_tp(cl.trans);
        const Local before_gap = local_of(transition - 1);
        if (internal::floor_div(before_gap, internal::kSecondsPerDay) ==
            internal::floor_div(l, internal::kSecondsPerDay)) {
          return transition - 1;
        }
        return from_tp(cl.post);
      }
      case cctz::time_zone::civil_lookup::UNIQUE:
        break;
    }
    return from_tp(cl.pre);
  }

  const cctz::time_zone& zone_;
  internal::Matcher matcher_;
  bool interval_;
};

bool valid_zone_name(std::string_view name) {
  if (name.empty() || name.size() > 255 || name.front() == '/') return false;
  for (const char c : name) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '/' || c == '_' || c == '-' || c == '+' || c == '.';
    if (!ok) return false;
  }
  // No "." or ".." path components: names are looked up as files under the zoneinfo folder.
  std::size_t begin = 0;
  while (begin <= name.size()) {
    const std::size_t end = std::min(name.find('/', begin), name.size());
    const std::string_view part = name.substr(begin, end - begin);
    if (part.empty() || part == "." || part == "..") return false;
    begin = end + 1;
  }
  return true;
}

}  // namespace

TimeZone::TimeZone() : TimeZone(utc()) {}

TimeZone::TimeZone(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

TimeZone TimeZone::utc() {
  static const std::shared_ptr<const Impl> kUtc =
      std::make_shared<const Impl>(Impl{"UTC", cctz::utc_time_zone()});
  return TimeZone(kUtc);
}

TimeZone TimeZone::load(std::string_view iana_name) {
  if (iana_name == "UTC") return utc();
  if (!valid_zone_name(iana_name)) {
    throw CronError(Field::kNone, CronError::kNoPosition,
                    "malformed time zone name '" + std::string(iana_name.substr(0, 64)) + "'");
  }
  cctz::time_zone zone;
  if (!cctz::load_time_zone(std::string(iana_name), &zone)) {
    throw CronError(Field::kNone, CronError::kNoPosition,
                    "unknown time zone '" + std::string(iana_name) + "'");
  }
  return TimeZone(std::make_shared<const Impl>(Impl{std::string(iana_name), zone}));
}

const std::string& TimeZone::name() const noexcept { return impl_->name; }

std::chrono::seconds TimeZone::utc_offset(std::chrono::sys_seconds instant) const {
  return std::chrono::seconds(impl_->zone.lookup(instant).offset);
}

std::optional<std::chrono::sys_seconds> CronExpression::next_impl(std::chrono::sys_seconds from,
                                                                  bool fractional,
                                                                  const TimeZone& tz,
                                                                  bool inclusive) const {
  Instant s = from.time_since_epoch().count();
  // A sub-second `from` behaves as the next whole second (Cronos rounds up), inclusive or not.
  bool after = fractional || !inclusive;
  if (s > kMaxInstant) return std::nullopt;
  if (s < kMinInstant) {
    s = kMinInstant;
    after = false;
  }
  const std::optional<Instant> found = ZoneSearch(tz.impl_->zone, spec_).next(s, after);
  if (!found || *found > kMaxInstant) return std::nullopt;
  return std::chrono::sys_seconds(std::chrono::seconds(*found));
}

std::optional<std::chrono::sys_seconds> CronExpression::previous_impl(std::chrono::sys_seconds from,
                                                                      bool fractional,
                                                                      const TimeZone& tz,
                                                                      bool inclusive) const {
  Instant s = from.time_since_epoch().count();
  // A sub-second `from` lies after its whole second, which therefore qualifies.
  bool before = !fractional && !inclusive;
  if (s < kMinInstant) return std::nullopt;
  if (s > kMaxInstant) {
    s = kMaxInstant;
    before = false;
  }
  const std::optional<Instant> found = ZoneSearch(tz.impl_->zone, spec_).previous(s, before);
  if (!found || *found < kMinInstant) return std::nullopt;
  return std::chrono::sys_seconds(std::chrono::seconds(*found));
}

std::vector<std::chrono::sys_seconds> CronExpression::occurrences_impl(
    std::chrono::sys_seconds from, bool from_fractional, std::chrono::sys_seconds to,
    bool to_inclusive, const TimeZone& tz, bool from_inclusive, std::size_t limit) const {
  std::vector<std::chrono::sys_seconds> result;
  std::optional<std::chrono::sys_seconds> occurrence =
      next_impl(from, from_fractional, tz, from_inclusive);
  while (result.size() < limit && occurrence &&
         (*occurrence < to || (to_inclusive && *occurrence == to))) {
    result.push_back(*occurrence);
    occurrence = next_impl(*occurrence, false, tz, false);
  }
  return result;
}

}  // namespace ergon::cron
