#include "commands/command_process.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <system_error>
#include <utility>

#include "commands/command_supervisor.h"
#include "runtime/command_lock.h"

namespace ergon::commands {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Bytes read per read(2); also the pipe's default capacity on Linux.
constexpr std::size_t kReadChunk = 64 * 1024;
// After the command exits, at most this many reads per stream drain what is already buffered.
constexpr int kMaxDrainReads = 64;
// Longest single ppoll sleep; the loop recomputes its deadlines after each wake-up anyway.
constexpr milliseconds kMaxPollSleep{60 * 60 * 1000};

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  // close(2) is not retried on EINTR: on Linux the descriptor is released whatever it returns.
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

std::string errno_text(int err) {
  const char* text = ::strerrordesc_np(err);  // thread-safe, unlike strerror()
  return text != nullptr ? text : "error " + std::to_string(err);
}

// Keeps the pipe's descriptors above 0/1/2. If the caller's process has closed a standard
// descriptor, pipe2() may hand it back; dup2() onto itself in the child would then neither move
// it nor clear its FD_CLOEXEC, and one pipe's dup2 could clobber another's source descriptor.
int move_above_stdio(UniqueFd& fd) {
  if (fd.get() > STDERR_FILENO) return 0;
  const int moved = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
  if (moved < 0) return errno;
  fd.reset(moved);
  return 0;
}

// O_CLOEXEC from the start (pipe2, not pipe + fcntl): another thread may be spawning its own
// command at this very moment, and a descriptor without close-on-exec would leak into that
// child — which would, among other things, keep our pipe open and our EOF from ever arriving.
int make_pipe(Pipe& out) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return errno;
  out.read.reset(fds[0]);
  out.write.reset(fds[1]);
  if (const int err = move_above_stdio(out.read)) return err;
  return move_above_stdio(out.write);
}

int set_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return errno;
  return 0;
}

// One command's supervisor (command_supervisor.h). Signals for the command's process group go
// to it through the control pipe; it sends the command's wait status once the command's whole
// tree is gone, then exits. The supervisor does the signalling because it is the command's
// parent: it alone knows when the group id stops being the command's. The destructor covers
// exceptional exits: closing the control pipe makes the supervisor kill the tree, and the
// supervisor is reaped, so no path leaves a process or a zombie behind.
class Supervisor {
 public:
  Supervisor(pid_t pid, UniqueFd control, UniqueFd status)
      : pid_(pid), control_(std::move(control)), status_(std::move(status)) {}
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;
  ~Supervisor() { finish(); }

  int status_fd() const { return status_.get(); }

  void signal_group(int sig) {
    if (!control_) return;
    const auto byte = static_cast<unsigned char>(sig);
    // EPIPE: the supervisor has already finished; its status is on its way.
    static_cast<void>(detail::write_without_sigpipe(control_.get(), &byte, 1));
  }

  // Ends the command if it still runs, waits for its tree to be gone and reaps the supervisor.
  // Returns the command's wait status; nothing if the supervisor died without sending it.
  std::optional<int> finish() {
    if (finished_) return status_value_;
    finished_ = true;
    control_.reset();
    int value = 0;
    ssize_t n;
    do {
      n = ::read(status_.get(), &value, sizeof value);
    } while (n < 0 && errno == EINTR);
    if (n == static_cast<ssize_t>(sizeof value)) status_value_ = value;
    status_.reset();
    // ECHILD (someone else reaped it: waitpid(-1) elsewhere, SIGCHLD ignored) loses nothing:
    // the status came through the pipe.
    int ignored = 0;
    while (::waitpid(pid_, &ignored, 0) < 0 && errno == EINTR) {
    }
    return status_value_;
  }

 private:
  pid_t pid_;
  UniqueFd control_;
  UniqueFd status_;
  bool finished_ = false;
  std::optional<int> status_value_;
};

Clock::time_point saturating_add(Clock::time_point t, milliseconds d) {
  if (d <= milliseconds::zero()) return t;
  if (d >= std::chrono::duration_cast<milliseconds>(Clock::time_point::max() - t)) {
    return Clock::time_point::max();
  }
  return t + d;
}

// Accumulates stdout, reports each complete progress line and keeps the last of each
// directive in `result`.
class StdoutLines {
 public:
  StdoutLines(const ProgressFn& on_progress, CommandResult& result)
      : on_progress_(on_progress), result_(result) {}

  void feed(std::string_view data) {
    while (!data.empty()) {
      const std::size_t newline = data.find('\n');
      const std::string_view piece = data.substr(0, newline);
      if (!overlong_) {
        const std::size_t room = kMaxStdoutLineBytes - line_.size();
        if (piece.size() > room) {
          line_.append(piece.substr(0, room));
          overlong_ = true;  // drop the rest of this line, up to its newline
        } else {
          line_.append(piece);
        }
      }
      if (newline == std::string_view::npos) return;
      end_line();
      data.remove_prefix(newline + 1);
    }
  }

  // A last line without a newline still counts once the command is gone.
  void finish() {
    if (!line_.empty()) end_line();
  }

 private:
  void end_line() {
    if (const auto progress = parse_progress_line(line_)) {
      if (on_progress_) on_progress_(progress->percent, progress->message);
    } else if (const auto directive = parse_directive_line(line_)) {
      std::string argument(directive->argument);
      switch (directive->kind) {
        case DirectiveLine::Kind::kResult:
          // A result cut at kMaxStdoutLineBytes would be wrong JSON, or worse, other JSON.
          result_.result =
              overlong_ ? std::string("<longer than the stdout line limit>") : std::move(argument);
          break;
        case DirectiveLine::Kind::kSnooze:
          result_.snooze = std::move(argument);
          break;
        case DirectiveLine::Kind::kFail:
          result_.fail = std::move(argument);
          break;
      }
    }
    line_.clear();
    overlong_ = false;
  }

  const ProgressFn& on_progress_;
  CommandResult& result_;
  std::string line_;
  bool overlong_ = false;
};

// Keeps the last `limit` bytes of stderr. The buffer grows to about twice the limit before the
// front is dropped, so trimming costs amortised O(1) per byte and memory stays bounded.
class StderrTail {
 public:
  explicit StderrTail(std::size_t limit)
      : limit_(limit),
        compact_at_(limit > std::numeric_limits<std::size_t>::max() / 2
                        ? std::numeric_limits<std::size_t>::max()
                        : std::max<std::size_t>(2 * limit, 4096)) {}

  void feed(std::string_view data) {
    total_ += data.size();
    if (data.size() >= limit_) {
      buffer_.assign(data.substr(data.size() - limit_));
      return;
    }
    buffer_.append(data);
    if (buffer_.size() > compact_at_) buffer_.erase(0, buffer_.size() - limit_);
  }

  bool truncated() const { return total_ > limit_; }

  std::string take() {
    if (buffer_.size() > limit_) buffer_.erase(0, buffer_.size() - limit_);
    if (truncated()) {
      // The cut may have split a UTF-8 sequence: skip its continuation bytes (10xxxxxx).
      std::size_t skip = 0;
      while (skip < buffer_.size() && skip < 3 &&
             (static_cast<unsigned char>(buffer_[skip]) & 0xC0) == 0x80) {
        ++skip;
      }
      buffer_.erase(0, skip);
    }
    return std::move(buffer_);
  }

 private:
  std::size_t limit_;
  std::size_t compact_at_;
  std::size_t total_ = 0;
  std::string buffer_;
};

enum class ReadStatus { kData, kWouldBlock, kClosed };

// One read(2) from a non-blocking pipe into `buffer`; EOF and errors close the descriptor.
ReadStatus read_once(UniqueFd& fd, std::vector<char>& buffer, std::string_view& data) {
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
    if (n > 0) {
      data = std::string_view(buffer.data(), static_cast<std::size_t>(n));
      return ReadStatus::kData;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return ReadStatus::kWouldBlock;
    fd.reset();
    return ReadStatus::kClosed;
  }
}

std::string format_seconds(milliseconds ms) {
  const long long total = std::max<long long>(ms.count(), 0);
  std::string text = std::to_string(total / 1000);
  const long long frac = total % 1000;
  if (frac != 0) {
    std::string digits = std::to_string(frac);
    digits.insert(0, 3 - digits.size(), '0');
    while (digits.back() == '0') digits.pop_back();
    text += '.' + digits;
  }
  return text + 's';
}

// The stderr tail as one line: trailing whitespace dropped, line breaks shown as " | ".
std::string one_line(std::string_view tail, bool truncated) {
  while (!tail.empty() && std::strchr(" \t\r\n\v\f", tail.back()) != nullptr) {
    tail.remove_suffix(1);
  }
  std::string out = truncated && !tail.empty() ? "..." : "";
  bool pending_break = false;
  for (const char c : tail) {
    if (c == '\n' || c == '\r') {
      pending_break = true;
      continue;
    }
    if (pending_break) {
      out += " | ";
      pending_break = false;
    }
    out += static_cast<unsigned char>(c) < 0x20 || c == 0x7F ? ' ' : c;
  }
  return out;
}

std::string cannot_run(const std::string& name, std::string_view why) {
  return "cannot run '" + name + "': " + std::string(why);
}

// Rejects what the kernel interfaces cannot express (C strings end at the first NUL).
std::optional<std::string> invalid_spec(const CommandSpec& spec) {
  const std::string& name = spec.argv.front();
  for (const std::string& arg : spec.argv) {
    if (arg.find('\0') != std::string::npos)
      return cannot_run(name, "argument contains a NUL byte");
  }
  for (const auto& [key, value] : spec.env) {
    if (key.empty() || key.find_first_of(std::string_view("=\0", 2)) != std::string::npos) {
      return cannot_run(name, "invalid environment variable name '" + key + "'");
    }
    if (value.find('\0') != std::string::npos) {
      return cannot_run(name, "environment variable '" + key + "' contains a NUL byte");
    }
  }
  if (spec.working_directory.find('\0') != std::string::npos) {
    return cannot_run(name, "working directory contains a NUL byte");
  }
  return std::nullopt;
}

// The inherited environment with spec.env added or overridden, as "KEY=VALUE" strings.
std::vector<std::string> build_environment(const std::map<std::string, std::string>& overrides) {
  std::vector<std::string> entries;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    const std::string_view key = text.substr(0, text.find('='));
    if (overrides.find(std::string(key)) != overrides.end()) continue;
    entries.emplace_back(text);
  }
  for (const auto& [key, value] : overrides) entries.push_back(key + '=' + value);
  return entries;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  pointers.reserve(strings.size() + 1);
  for (std::string& s : strings) pointers.push_back(s.data());
  pointers.push_back(nullptr);
  return pointers;
}

// The explanation for a failed spawn. A failed chdir and a failed exec both come back as an
// errno (usually ENOENT), so when a working directory was asked for and is unusable, say so
// rather than blaming the command.
std::string spawn_failure(const CommandSpec& spec, int err) {
  const std::string& name = spec.argv.front();
  if (!spec.working_directory.empty()) {
    const std::string& dir = spec.working_directory;
    struct stat info;
    int dir_err = 0;
    if (::stat(dir.c_str(), &info) != 0) {
      dir_err = errno;
    } else if (!S_ISDIR(info.st_mode)) {
      dir_err = ENOTDIR;
    } else if (::access(dir.c_str(), X_OK) != 0) {
      dir_err = errno;
    }
    if (dir_err != 0) {
      return "cannot run '" + name + "' in working directory '" + dir + "': " + errno_text(dir_err);
    }
  }
  return cannot_run(name, errno_text(err));
}

struct Spawned {
  pid_t pid = -1;
  int error = 0;  // errno value when the spawn itself failed
  std::string what;
};

// PATH lookup done in the parent, so that the child between fork and exec only makes system
// calls. Returns the path to execute, or "" (with errno_out) when nothing executable is found.
std::string resolve_command(const std::string& name, int& errno_out) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string_view dirs = path && *path ? path : "/usr/local/bin:/usr/bin:/bin";
  errno_out = ENOENT;
  while (true) {
    auto colon = dirs.find(':');
    std::string dir(dirs.substr(0, colon));
    std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) {
      struct stat info;
      if (::stat(candidate.c_str(), &info) == 0 && S_ISREG(info.st_mode)) return candidate;
    } else if (errno == EACCES) {
      errno_out = EACCES;
    }
    if (colon == std::string_view::npos) break;
    dirs.remove_prefix(colon + 1);
  }
  return {};
}

Spawned spawn(const CommandSpec& spec, int stdin_fd, int stdout_fd, int stderr_fd, int control_fd,
              int status_fd) {
  Spawned out;
  std::vector<std::string> argv_storage = spec.argv;
  std::vector<std::string> env_storage = build_environment(spec.env);
  const std::vector<char*> argv = c_strings(argv_storage);
  const std::vector<char*> envp = c_strings(env_storage);
  int lookup_error = 0;
  const std::string program = resolve_command(spec.argv.front(), lookup_error);
  if (program.empty()) {
    out.error = lookup_error;
    out.what = spawn_failure(spec, lookup_error);
    return out;
  }

  // The command (or its supervisor) reports a failed chdir, exec or fork through this pipe
  // (close-on-exec: a successful exec closes it, and we read end-of-file).
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) {
    out.error = errno;
    out.what = cannot_run(spec.argv.front(), errno_text(out.error));
    return out;
  }
  detail::SupervisorPlan plan;
  plan.program = program.c_str();
  plan.argv = argv.data();
  plan.envp = envp.data();
  plan.working_directory =
      spec.working_directory.empty() ? nullptr : spec.working_directory.c_str();
  plan.stdin_fd = stdin_fd;
  plan.stdout_fd = stdout_fd;
  plan.stderr_fd = stderr_fd;
  plan.report_fd = report[1];
  plan.control_fd = control_fd;
  plan.status_fd = status_fd;
  plan.lock_fd = runtime::command_lock_fd();

  // fork rather than posix_spawn: the supervisor is a process of ours, not a program (see
  // command_supervisor.h for what it does and why). Between fork and exit it only makes
  // system calls on the plan prepared above, which is what makes fork safe in a multithreaded
  // process.
  const pid_t pid = ::fork();
  if (pid < 0) {
    out.error = errno;
    out.what = cannot_run(spec.argv.front(), errno_text(out.error));
    ::close(report[0]);
    ::close(report[1]);
    return out;
  }
  if (pid == 0) detail::supervise(plan);
  ::close(report[1]);
  int child_error = 0;
  ssize_t n;
  do {
    n = ::read(report[0], &child_error, sizeof child_error);
  } while (n < 0 && errno == EINTR);
  ::close(report[0]);
  out.pid = pid;
  if (n == static_cast<ssize_t>(sizeof child_error)) {
    out.error = child_error;
    out.what = spawn_failure(spec, child_error);
  }
  return out;
}

CommandResult spawn_failed(std::string what) {
  CommandResult result;
  result.outcome = CommandResult::Outcome::kSpawnFailed;
  result.spawn_error = std::move(what);
  return result;
}

}  // namespace

bool CommandResult::ok() const { return outcome == Outcome::kExited && exit_code == 0; }

std::string CommandResult::describe() const {
  std::string text;
  switch (outcome) {
    case Outcome::kExited:
      text = exit_code >= 0 ? "command exited with status " + std::to_string(exit_code)
                            : "command ended with an unknown status (its supervisor was killed)";
      break;
    case Outcome::kSignaled: {
      const char* name = ::sigdescr_np(signal);  // thread-safe, unlike strsignal()
      text = "command killed by signal " + std::to_string(signal) + " (" +
             (name != nullptr ? name : "unknown signal") + ")";
      break;
    }
    case Outcome::kTimedOut:
      text = "command timed out after " + format_seconds(timeout) + " and was killed";
      break;
    case Outcome::kStopped:
      return "command stopped (worker shutting down)";
    case Outcome::kSpawnFailed:
      return spawn_error.empty() ? "command could not be started" : spawn_error;
  }
  const std::string tail = one_line(stderr_tail, stderr_truncated);
  if (!tail.empty()) text += ": " + tail;
  return text;
}

std::optional<DirectiveLine> parse_directive_line(std::string_view line) {
  const auto is_blank = [](char c) { return c == ' ' || c == '\t'; };
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  for (auto [keyword, kind] : {std::pair{std::string_view("result"), DirectiveLine::Kind::kResult},
                               std::pair{std::string_view("snooze"), DirectiveLine::Kind::kSnooze},
                               std::pair{std::string_view("fail"), DirectiveLine::Kind::kFail}}) {
    if (!line.starts_with(keyword)) continue;
    std::string_view rest = line.substr(keyword.size());
    if (!rest.empty() && !is_blank(rest.front())) return std::nullopt;  // "results", "failed"
    while (!rest.empty() && is_blank(rest.front())) rest.remove_prefix(1);
    return DirectiveLine{kind, rest};
  }
  return std::nullopt;
}

std::optional<ProgressLine> parse_progress_line(std::string_view line) {
  constexpr std::string_view kKeyword = "progress";
  const auto is_blank = [](char c) { return c == ' ' || c == '\t'; };
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (!line.starts_with(kKeyword)) return std::nullopt;
  line.remove_prefix(kKeyword.size());
  if (line.empty() || !is_blank(line.front())) return std::nullopt;
  while (!line.empty() && is_blank(line.front())) line.remove_prefix(1);

  const char* const end = line.data() + line.size();
  int percent = 0;
  const auto [number_end, ec] = std::from_chars(line.data(), end, percent);
  if (ec != std::errc()) return std::nullopt;  // not a number, or out of int's range
  const char* p = number_end;
  if (p != end && *p == '.') {
    ++p;
    while (p != end && *p >= '0' && *p <= '9') ++p;
  }
  if (p != end && !is_blank(*p)) return std::nullopt;  // "50abc", "1e3"
  while (p != end && is_blank(*p)) ++p;
  return ProgressLine{percent, std::string_view(p, static_cast<std::size_t>(end - p))};
}

namespace detail {

ssize_t write_without_sigpipe(int fd, const void* data, std::size_t size) {
  // A write to a pipe whose reader is gone raises SIGPIPE, whose default action kills the whole
  // worker. A library must not change the process-wide disposition, so SIGPIPE is blocked in
  // this thread only (the signal is directed at the writing thread), and the one our EPIPE left
  // pending is consumed before the old mask comes back.
  sigset_t sigpipe_set;
  sigemptyset(&sigpipe_set);
  sigaddset(&sigpipe_set, SIGPIPE);
  sigset_t old_mask;
  ::pthread_sigmask(SIG_BLOCK, &sigpipe_set, &old_mask);
  // Standard signals do not queue: if a SIGPIPE was already pending, ours merges with it, and
  // consuming it would swallow somebody else's signal.
  sigset_t pending;
  sigemptyset(&pending);
  ::sigpending(&pending);
  const bool was_pending = sigismember(&pending, SIGPIPE) == 1;

  ssize_t n;
  do {
    n = ::write(fd, data, size);
  } while (n < 0 && errno == EINTR);
  const int saved_errno = errno;

  if (n < 0 && saved_errno == EPIPE && !was_pending) {
    const timespec no_wait{0, 0};
    while (::sigtimedwait(&sigpipe_set, nullptr, &no_wait) < 0 && errno == EINTR) {
    }
  }
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  errno = saved_errno;
  return n;
}

}  // namespace detail

CommandResult run_command(const CommandSpec& spec, std::string_view stdin_data,
                          const ProgressFn& on_progress, std::stop_token stop) {
  if (spec.argv.empty()) return spawn_failed("empty command");
  if (auto invalid = invalid_spec(spec)) return spawn_failed(std::move(*invalid));
  if (stop.stop_requested()) {
    CommandResult result;
    result.outcome = CommandResult::Outcome::kStopped;
    return result;
  }

  const std::string& name = spec.argv.front();
  Pipe in, out, err, wake, control, report_status;
  for (Pipe* pipe : {&in, &out, &err, &wake, &control, &report_status}) {
    if (const int e = make_pipe(*pipe)) return spawn_failed(cannot_run(name, errno_text(e)));
  }
  // Only our ends are non-blocking: O_NONBLOCK belongs to the open file description, and the
  // command must get ordinary blocking stdin/stdout/stderr.
  for (const int fd : {in.write.get(), out.read.get(), err.read.get(), wake.read.get(),
                       wake.write.get(), control.write.get()}) {
    if (const int e = set_nonblocking(fd)) return spawn_failed(cannot_run(name, errno_text(e)));
  }

  Spawned spawned = spawn(spec, in.read.get(), out.write.get(), err.write.get(), control.read.get(),
                          report_status.write.get());
  // The supervisor's ends must be closed here, or our reads would never see EOF.
  in.read.reset();
  out.write.reset();
  err.write.reset();
  control.read.reset();
  report_status.write.reset();
  if (spawned.pid < 0) return spawn_failed(std::move(spawned.what));
  Supervisor child(spawned.pid, std::move(control.write), std::move(report_status.read));
  if (spawned.error != 0) return spawn_failed(std::move(spawned.what));
  const Clock::time_point started = Clock::now();

  // The stop callback only writes one byte to the self-pipe: it may run on another thread (the
  // one requesting the stop), and the pipe wakes our ppoll at once. Declared after `wake`, so it
  // is unregistered (and waited for, if running) before the pipe is closed.
  std::stop_callback on_stop(stop, [fd = wake.write.get()] {
    const char byte = 1;
    const ssize_t ignored = ::write(fd, &byte, 1);
    static_cast<void>(ignored);
  });

  std::optional<Clock::time_point> deadline;
  if (spec.timeout) deadline = saturating_add(started, *spec.timeout);
  enum class Reason { kNone, kTimeout, kStop };
  Reason reason = Reason::kNone;
  Clock::time_point kill_at = Clock::time_point::max();
  bool sigkill_sent = false;

  std::size_t written = 0;
  if (stdin_data.empty()) in.write.reset();
  std::vector<char> buffer(kReadChunk);
  CommandResult result;  // the directives as the lines come; the rest once the command is gone
  StdoutLines lines(on_progress, result);
  StderrTail tail(spec.stderr_tail_bytes);

  const auto begin_termination = [&](Reason why, Clock::time_point now) {
    reason = why;
    child.signal_group(SIGTERM);  // and SIGCONT, from the supervisor
    kill_at = saturating_add(now, spec.kill_grace);
  };
  const auto read_stream = [&](UniqueFd& fd, bool is_stdout) {
    std::string_view data;
    const ReadStatus status = read_once(fd, buffer, data);
    if (status == ReadStatus::kData) {
      if (is_stdout) {
        lines.feed(data);
      } else {
        tail.feed(data);
      }
    }
    return status;
  };

  for (;;) {
    const Clock::time_point now = Clock::now();
    if (reason == Reason::kNone) {
      if (stop.stop_requested()) {
        begin_termination(Reason::kStop, now);
      } else if (deadline && now >= *deadline) {
        begin_termination(Reason::kTimeout, now);
      }
    }
    if (reason != Reason::kNone && !sigkill_sent && now >= kill_at) {
      child.signal_group(SIGKILL);
      sigkill_sent = true;
    }

    pollfd fds[5];
    nfds_t count = 0;
    const auto watch = [&](int fd, short events) -> int {
      if (fd < 0) return -1;
      fds[count] = pollfd{fd, events, 0};
      return static_cast<int>(count++);
    };
    const int wake_index = reason == Reason::kNone ? watch(wake.read.get(), POLLIN) : -1;
    const int status_index = watch(child.status_fd(), POLLIN);
    const int in_index = watch(in.write.get(), POLLOUT);
    const int out_index = watch(out.read.get(), POLLIN);
    const int err_index = watch(err.read.get(), POLLIN);

    Clock::time_point wake_at = now + kMaxPollSleep;
    if (reason == Reason::kNone && deadline) wake_at = std::min(wake_at, *deadline);
    if (reason != Reason::kNone && !sigkill_sent) wake_at = std::min(wake_at, kill_at);
    const auto sleep_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::max(wake_at - now, Clock::duration::zero()));
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(sleep_ns);
    const timespec sleep_for{static_cast<time_t>(seconds.count()),
                             static_cast<long>((sleep_ns - seconds).count())};

    if (::ppoll(fds, count, &sleep_for, nullptr) < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "run_command: ppoll");
    }
    const auto ready = [&](int index) { return index >= 0 && fds[index].revents != 0; };

    if (ready(wake_index)) {
      char drain[16];
      while (::read(wake.read.get(), drain, sizeof drain) > 0) {
      }
    }
    if (ready(in_index)) {
      const ssize_t n = detail::write_without_sigpipe(in.write.get(), stdin_data.data() + written,
                                                      stdin_data.size() - written);
      if (n > 0) written += static_cast<std::size_t>(n);
      // EPIPE (the command closed its stdin or exited) and other errors end the payload; the
      // command's exit status says whether that mattered. Closing signals EOF otherwise.
      if (written == stdin_data.size() || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        in.write.reset();
      }
    }
    if (ready(out_index)) read_stream(out.read, true);
    if (ready(err_index)) read_stream(err.read, false);
    if (ready(status_index)) break;
  }

  // The supervisor has reported: the command and every process of its tree are gone, so what
  // they wrote is already in the pipes. Take it and stop (a process the supervisor could not
  // find might still hold a pipe open; EOF is not waited for).
  const std::optional<int> status = child.finish();
  in.write.reset();
  for (int i = 0; i < kMaxDrainReads && out.read; ++i) {
    if (read_stream(out.read, true) != ReadStatus::kData) break;
  }
  for (int i = 0; i < kMaxDrainReads && err.read; ++i) {
    if (read_stream(err.read, false) != ReadStatus::kData) break;
  }
  out.read.reset();
  err.read.reset();
  lines.finish();

  result.outcome = CommandResult::Outcome::kExited;
  if (status && WIFEXITED(*status)) {
    result.exit_code = WEXITSTATUS(*status);
  } else if (status && WIFSIGNALED(*status)) {
    result.outcome = CommandResult::Outcome::kSignaled;
    result.signal = WTERMSIG(*status);
  }
  if (reason == Reason::kTimeout) {
    result.outcome = CommandResult::Outcome::kTimedOut;
    result.timeout = std::max(*spec.timeout, milliseconds::zero());
  } else if (reason == Reason::kStop) {
    result.outcome = CommandResult::Outcome::kStopped;
  }
  result.stderr_truncated = tail.truncated();
  result.stderr_tail = tail.take();
  return result;
}

}  // namespace ergon::commands
