// Parsing and printing of cron expressions, following Cronos's grammar and error attribution.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ergon/cron.h"
#include "net_random.h"

namespace ergon::cron {
namespace {

using detail::Spec;

struct FieldInfo {
  Field field;
  int first;
  int last;
  // `H` draws from [first, hash_last]; `H/n` steps from there up to hash_step_last. Cronos keeps
  // hashed days of month within 1..28 so that they exist in every month.
  int hash_last;
  int hash_step_last;
  bool can_define_interval;  // seconds, minutes and hours
};

constexpr FieldInfo kSecondsInfo{Field::kSeconds, 0, 59, 59, 59, true};
constexpr FieldInfo kMinutesInfo{Field::kMinutes, 0, 59, 59, 59, true};
constexpr FieldInfo kHoursInfo{Field::kHours, 0, 23, 23, 23, true};
constexpr FieldInfo kDaysOfMonthInfo{Field::kDaysOfMonth, 1, 31, 28, 28, false};
constexpr FieldInfo kMonthsInfo{Field::kMonths, 1, 12, 12, 12, false};
constexpr FieldInfo kDaysOfWeekInfo{Field::kDaysOfWeek, 0, 7, 6, 7, false};

constexpr std::array<std::string_view, 12> kMonthNames = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr std::array<std::string_view, 7> kDayNames = {"SUN", "MON", "TUE", "WED",
                                                       "THU", "FRI", "SAT"};

constexpr std::uint64_t kAllSeconds = (std::uint64_t{1} << 60) - 1;
constexpr std::uint64_t kAllHours = (std::uint64_t{1} << 24) - 1;
constexpr std::uint64_t kAllDaysOfMonth = 0xFFFFFFFEULL;  // 1..31
constexpr std::uint64_t kAllMonths = 0x1FFEULL;           // 1..12
constexpr std::uint64_t kAllDaysOfWeek = 0xFFULL;         // 0..7
constexpr std::uint8_t kSundayBits = 0x81;                // 0 and 7

std::uint64_t all_bits(const FieldInfo& info) {
  switch (info.field) {
    case Field::kSeconds:
    case Field::kMinutes:
      return kAllSeconds;
    case Field::kHours:
      return kAllHours;
    case Field::kDaysOfMonth:
      return kAllDaysOfMonth;
    case Field::kMonths:
      return kAllMonths;
    default:
      return kAllDaysOfWeek;
  }
}

bool is_blank(char c) { return c == ' ' || c == '\t'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_letter(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
char to_upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }

std::uint64_t range_bits(int low, int high, int step) {
  std::uint64_t bits = 0;
  for (int i = low; i <= high; i += step) bits |= std::uint64_t{1} << i;
  return bits;
}

// Cronos's bits for `low-high/step`, where high < low wraps around the end of the field
// (`22-2` = 22,23,0,1,2); the step carries over the wrap as if the values continued.
std::uint64_t bits_for_range(const FieldInfo& info, int low, int high, int step) {
  if (high >= low) return range_bits(low, high, step);
  // Weekday 7 is Sunday again, so a wrapping weekday range wraps after Saturday.
  const int top = info.field == Field::kDaysOfWeek ? info.last - 1 : info.last;
  std::uint64_t bits = range_bits(low, top, step);
  const int restart = info.first + step - (top - low) % step - 1;
  return bits | range_bits(restart, high, step);
}

class Parser {
 public:
  Parser(std::string_view text, const ParseOptions& options) : text_(text), options_(options) {
    if (options_.jitter_seed) random_.emplace(*options_.jitter_seed);
  }

  Spec parse() {
    for (std::size_t i = 0; i < text_.size(); ++i) {
      if (text_[i] == '\0') fail(Field::kNone, i, "NUL character in cron expression");
    }
    if (text_.empty()) fail(Field::kNone, 0, "empty cron expression");
    skip_blanks();
    if (peek() == '@') return parse_macro();

    spec_.day_match = options_.day_match;
    if (options_.format == Format::kSeconds) {
      spec_.seconds = parse_field(kSecondsInfo);
      expect_blank(kSecondsInfo, kMinutesInfo);
    } else {
      spec_.seconds = 1;  // second 0
    }
    spec_.minutes = parse_field(kMinutesInfo);
    expect_blank(kMinutesInfo, kHoursInfo);
    spec_.hours = static_cast<std::uint32_t>(parse_field(kHoursInfo));
    expect_blank(kHoursInfo, kDaysOfMonthInfo);
    spec_.days_of_month = static_cast<std::uint32_t>(parse_day_of_month());
    expect_blank(kDaysOfMonthInfo, kMonthsInfo);
    spec_.months = static_cast<std::uint16_t>(parse_field(kMonthsInfo));
    expect_blank(kMonthsInfo, kDaysOfWeekInfo);
    spec_.days_of_week = static_cast<std::uint8_t>(parse_day_of_week());
    expect_end();

    // Weekdays 0 and 7 are both Sunday.
    if ((spec_.days_of_week & kSundayBits) != 0) spec_.days_of_week |= kSundayBits;
    return spec_;
  }

 private:
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }

  bool accept(char c) {
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  // Case-insensitive accept of an upper-case letter.
  bool accept_letter(char upper) {
    if (pos_ < text_.size() && to_upper(text_[pos_]) == upper) {
      ++pos_;
      return true;
    }
    return false;
  }

  void skip_blanks() {
    while (pos_ < text_.size() && is_blank(text_[pos_])) ++pos_;
  }

  [[noreturn]] void fail(Field field, std::size_t position, const std::string& what) const {
    std::string message;
    if (field != Field::kNone) {
      message.append(field_name(field)).append(": ");
    }
    message.append(what);
    message.append(" (at position ").append(std::to_string(position)).append(", ");
    if (position >= text_.size()) {
      message.append("at the end of the expression)");
    } else {
      message.append("near '");
      for (std::size_t i = position; i < text_.size() && i < position + 16 && !is_blank(text_[i]);
           ++i) {
        const auto c = static_cast<unsigned char>(text_[i]);
        if (c >= 0x20 && c < 0x7F) {
          message.push_back(static_cast<char>(c));
        } else {
          constexpr char kHex[] = "0123456789ABCDEF";
          message.append("\\x").push_back(kHex[c >> 4]);
          message.push_back(kHex[c & 0xF]);
        }
      }
      message.append("')");
    }
    message.append(" in cron expression");
    throw CronError(field, position, message);
  }

  void set_interval(const FieldInfo& info) {
    if (info.can_define_interval) spec_.flags |= Spec::kFlagInterval;
  }

  // Fields are separated by blanks; Cronos blames the field before a missing separator.
  void expect_blank(const FieldInfo& previous, const FieldInfo& next) {
    if (pos_ >= text_.size()) {
      fail(previous.field, pos_,
           std::string("the expression ends here, the ") + std::string(field_name(next.field)) +
               " field is missing (" +
               (options_.format == Format::kSeconds ? "6 fields expected, seconds first"
                                                    : "5 fields expected") +
               ")");
    }
    if (!is_blank(peek())) fail(previous.field, pos_, "unexpected character");
    skip_blanks();
  }

  void expect_end() {
    if (pos_ < text_.size() && !is_blank(peek())) {
      fail(Field::kDaysOfWeek, pos_, "unexpected character");
    }
    skip_blanks();
    if (pos_ < text_.size()) {
      fail(Field::kNone, pos_,
           options_.format == Format::kSeconds
               ? "unexpected text after the 6th field"
               : "unexpected text after the 5th field (use Format::kSeconds for 6 fields)");
    }
  }

  // Cronos's GetNumber: one or two digits, or (for months and weekdays) a three-letter name.
  // Returns -1 when the text is neither.
  int read_number(const FieldInfo* names_of) {
    if (is_digit(peek())) {
      int number = peek() - '0';
      ++pos_;
      if (!is_digit(peek())) return number;
      number = number * 10 + (peek() - '0');
      ++pos_;
      return is_digit(peek()) ? -1 : number;
    }
    if (names_of == nullptr) return -1;
    if (names_of->field != Field::kMonths && names_of->field != Field::kDaysOfWeek) return -1;
    std::string name;
    for (int i = 0; i < 3; ++i) {
      if (!is_letter(peek())) return -1;
      name.push_back(to_upper(peek()));
      ++pos_;
    }
    if (names_of->field == Field::kMonths) {
      for (std::size_t i = 0; i < kMonthNames.size(); ++i) {
        if (kMonthNames[i] == name) return static_cast<int>(i) + 1;
      }
    } else {
      for (std::size_t i = 0; i < kDayNames.size(); ++i) {
        if (kDayNames[i] == name) return static_cast<int>(i);
      }
    }
    return -1;
  }

  int parse_value(const FieldInfo& info) {
    const std::size_t start = pos_;
    const int number = read_number(&info);
    if (number < info.first || number > info.last) {
      std::string what = "value must be a number between " + std::to_string(info.first) + " and " +
                         std::to_string(info.last) + " (all inclusive)";
      if (info.field == Field::kMonths) what += " or a month name (JAN-DEC)";
      if (info.field == Field::kDaysOfWeek) what += " or a day name (SUN-SAT)";
      fail(info.field, start, what);
    }
    return number;
  }

  int parse_number(const FieldInfo& info, int low, int high, const char* what) {
    const std::size_t start = pos_;
    const int number = read_number(nullptr);
    if (number < low || number > high) {
      fail(info.field, start,
           std::string(what) + " must be a number between " + std::to_string(low) + " and " +
               std::to_string(high) + " (all inclusive)");
    }
    return number;
  }

  int parse_step(const FieldInfo& info) { return parse_number(info, 1, info.last, "step"); }

  std::uint64_t parse_star(const FieldInfo& info) {
    if (!accept('/')) return all_bits(info);
    return range_bits(info.first, info.last, parse_step(info));
  }

  std::uint64_t parse_range(const FieldInfo& info, int low) {
    if (accept('-')) {
      set_interval(info);
      const int high = parse_value(info);
      const int step = accept('/') ? parse_step(info) : 1;
      return bits_for_range(info, low, high, step);
    }
    if (accept('/')) {
      set_interval(info);
      return bits_for_range(info, low, info.last, parse_step(info));
    }
    return std::uint64_t{1} << low;
  }

  std::uint64_t parse_list(const FieldInfo& info, int first_value) {
    std::uint64_t bits = parse_range(info, first_value);
    while (accept(',')) bits |= parse_range(info, parse_value(info));
    return bits;
  }

  // `H` or `H/step`, resolved with the seeded generator in field order (as Cronos does).
  std::uint64_t parse_hash(const FieldInfo& info) {
    const std::size_t start = pos_;
    ++pos_;  // the H
    if (!random_) {
      fail(info.field, start, "'H' needs a jitter seed (ParseOptions::jitter_seed)");
    }
    if (accept('/')) {
      const int step = parse_step(info);
      set_interval(info);
      const int begin = info.first + static_cast<int>(random_->sample() * step);
      if (begin > info.hash_step_last) return std::uint64_t{1} << begin;
      return range_bits(begin, info.hash_step_last, step);
    }
    return std::uint64_t{1} << random_->next(info.first, info.hash_last + 1);
  }

  bool at_hash() const { return to_upper(peek()) == 'H'; }

  std::uint64_t parse_field(const FieldInfo& info) {
    if (accept('*') || accept('?')) {
      set_interval(info);
      return parse_star(info);
    }
    if (at_hash()) return parse_hash(info);
    return parse_list(info, parse_value(info));
  }

  std::uint64_t parse_day_of_month() {
    const FieldInfo& info = kDaysOfMonthInfo;
    if (accept('*') || accept('?')) {
      if (options_.day_match == DayMatch::kOr) spec_.flags |= Spec::kFlagDomStar;
      return parse_star(info);
    }
    if (at_hash()) return parse_hash(info);
    if (accept_letter('L')) {
      spec_.flags |= Spec::kFlagDayOfMonthLast;
      if (accept('-')) {
        spec_.last_day_offset =
            static_cast<std::uint8_t>(parse_number(info, 0, info.last - 1, "offset after L-"));
      }
      if (accept_letter('W')) spec_.flags |= Spec::kFlagNearestWeekday;
      return kAllDaysOfMonth;
    }
    const int day = parse_value(info);
    if (accept_letter('W')) {
      spec_.flags |= Spec::kFlagNearestWeekday;
      return std::uint64_t{1} << day;
    }
    return parse_list(info, day);
  }

  std::uint64_t parse_day_of_week() {
    const FieldInfo& info = kDaysOfWeekInfo;
    if (accept('*') || accept('?')) {
      if (options_.day_match == DayMatch::kOr) spec_.flags |= Spec::kFlagDowStar;
      return parse_star(info);
    }
    if (at_hash()) return parse_hash(info);
    const int day = parse_value(info);
    if (accept_letter('L')) {
      spec_.flags |= Spec::kFlagDayOfWeekLast;
      return std::uint64_t{1} << day;
    }
    if (accept('#')) {
      spec_.nth_day_of_week = static_cast<std::uint8_t>(parse_number(info, 1, 5, "n of '#n'"));
      spec_.flags |= Spec::kFlagNthDayOfWeek;
      return std::uint64_t{1} << day;
    }
    return parse_list(info, day);
  }

  Spec parse_macro() {
    const std::size_t at = pos_;
    ++pos_;  // the @
    std::string word;
    while (pos_ < text_.size() && (is_letter(peek()) || peek() == '_')) {
      word.push_back(to_upper(peek()));
      ++pos_;
    }
    // Each macro as a 6-field expression, without and with a jitter seed.
    struct Macro {
      std::string_view name, plain, jittered;
    };
    constexpr Macro kMacros[] = {
        {"YEARLY", "0 0 0 1 1 *", "H H H H H *"},
        {"ANNUALLY", "0 0 0 1 1 *", "H H H H H *"},
        {"MONTHLY", "0 0 0 1 * *", "H H H H * *"},
        {"WEEKLY", "0 0 0 * * 0", "H H H * * H"},
        {"DAILY", "0 0 0 * * *", "H H H * * *"},
        {"MIDNIGHT", "0 0 0 * * *", "H H H * * *"},
        {"HOURLY", "0 0 * * * *", "H H * * * *"},
        {"EVERY_MINUTE", "0 * * * * *", "H * * * * *"},
        {"EVERY_SECOND", "* * * * * *", "* * * * * *"},
    };
    const Macro* macro = nullptr;
    for (const Macro& m : kMacros) {
      if (m.name == word) macro = &m;
    }
    if (macro == nullptr) {
      fail(Field::kNone, at,
           "unknown macro (expected @yearly, @annually, @monthly, @weekly, @daily, @midnight, "
           "@hourly, @every_minute or @every_second)");
    }
    skip_blanks();
    if (pos_ < text_.size()) fail(Field::kNone, pos_, "unexpected character after the macro");
    ParseOptions options = options_;
    options.format = Format::kSeconds;
    return Parser(options_.jitter_seed ? macro->jittered : macro->plain, options).parse();
  }

  std::string_view text_;
  ParseOptions options_;
  std::size_t pos_ = 0;
  Spec spec_;
  std::optional<internal::NetRandom> random_;
};

void append_values(std::string& out, std::uint64_t bits, std::uint64_t all, int first, int last) {
  if (bits == all) {
    out.push_back('*');
    return;
  }
  bool any = false;
  for (int i = first; i <= last; ++i) {
    if (((bits >> i) & 1U) == 0) continue;
    if (any) out.push_back(',');
    out.append(std::to_string(i));
    any = true;
  }
}

}  // namespace

std::string_view field_name(Field field) noexcept {
  switch (field) {
    case Field::kSeconds:
      return "Seconds";
    case Field::kMinutes:
      return "Minutes";
    case Field::kHours:
      return "Hours";
    case Field::kDaysOfMonth:
      return "Days of month";
    case Field::kMonths:
      return "Months";
    case Field::kDaysOfWeek:
      return "Days of week";
    case Field::kNone:
      break;
  }
  return "";
}

CronError::CronError(Field field, std::size_t position, const std::string& message)
    : std::invalid_argument(message), field_(field), position_(position) {}

CronExpression CronExpression::parse(std::string_view text, const ParseOptions& options) {
  return CronExpression(Parser(text, options).parse());
}

std::string CronExpression::to_string() const {
  std::string out;
  // Like Cronos 0.8+, a seconds field that is exactly {0} is left out (5-field text).
  if (spec_.seconds != 1) {
    append_values(out, spec_.seconds, kAllSeconds, 0, 59);
    out.push_back(' ');
  }
  append_values(out, spec_.minutes, kAllSeconds, 0, 59);
  out.push_back(' ');
  append_values(out, spec_.hours, kAllHours, 0, 23);
  out.push_back(' ');
  if ((spec_.flags & Spec::kFlagDayOfMonthLast) != 0) {
    out.push_back('L');
    if (spec_.last_day_offset != 0) out.append("-").append(std::to_string(spec_.last_day_offset));
  } else {
    append_values(out, spec_.days_of_month, kAllDaysOfMonth, 1, 31);
  }
  if ((spec_.flags & Spec::kFlagNearestWeekday) != 0) out.push_back('W');
  out.push_back(' ');
  append_values(out, spec_.months, kAllMonths, 1, 12);
  out.push_back(' ');
  append_values(out, spec_.days_of_week, kAllDaysOfWeek, 0, 6);  // 7 is printed as 0
  if ((spec_.flags & Spec::kFlagDayOfWeekLast) != 0) {
    out.push_back('L');
  } else if ((spec_.flags & Spec::kFlagNthDayOfWeek) != 0) {
    out.append("#").append(std::to_string(spec_.nth_day_of_week));
  }
  return out;
}

}  // namespace ergon::cron
