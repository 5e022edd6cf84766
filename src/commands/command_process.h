// commands/command_process.h — running a job's external command: spawn, feed, watch, kill, reap.
//
// A worker that handles a job type with an external command calls run_command() on an executor
// thread. run_command() spawns the command in a new process group, writes the job payload to its
// stdin, turns `progress <percent> <message>` lines on its stdout into on_progress() calls,
// keeps the tail of its stderr for the job's error message, enforces the timeout and the
// worker's stop token, and returns only when the command has been reaped.
//
// Ownership: run_command() owns everything it creates — the command's supervisor, the command,
// its process group, the pipes and every other descriptor — and releases all of it before
// returning, on every path (including an exception thrown by on_progress, which propagates after
// the command's tree has been killed and its supervisor reaped). The caller owns the spec, the
// payload and the callback, which must outlive the call. Nothing outlives the call: when the
// command exits, whatever is left of its tree (background grandchildren, processes that left
// its group with setsid) is SIGKILLed by its supervisor before run_command() returns.
//
// Thread-safety: run_command() keeps no shared state but the process's command lock file (made
// once) and may be called concurrently from any number of threads. on_progress runs on the
// calling thread, inside the I/O loop (a slow callback delays I/O but loses nothing). The
// command's status travels through a pipe, so another part of the process that reaps children
// it did not spawn (waitpid(-1), SIGCHLD set to SIG_IGN) cannot steal it. Nobody may modify the
// environment (setenv/putenv) while a command is being spawned, because the inherited
// environment is read from `environ`. The process-wide SIGPIPE disposition is never changed;
// SIGPIPE is only blocked briefly in the calling thread around writes to our pipes.
//
// The command dies with its worker process, whatever ends it (SIGKILL included), and so does
// every process it started: command_supervisor.h says how, and what escapes.
//
// Linux only (fork, PR_SET_CHILD_SUBREAPER, PR_SET_PDEATHSIG, signalfd, close_range, OFD locks,
// ppoll).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

namespace ergon::commands {

// Longest stdout line kept; the rest of a longer line is dropped up to its newline, so a command
// that never prints a newline cannot make the worker grow without bound.
inline constexpr std::size_t kMaxStdoutLineBytes = 64 * 1024;

struct CommandSpec {
  // argv[0] is looked up in PATH if it has no '/'. The lookup uses the worker's own PATH (as
  // execvp does), not a PATH given in `env`; a relative argv[0] containing '/' is resolved
  // against working_directory.
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;  // added to / overriding the inherited environment
  std::string working_directory;           // empty: inherit
  // None: no limit. Zero or negative: the command is terminated as soon as it has started.
  std::optional<std::chrono::milliseconds> timeout;
  // On timeout or stop: SIGTERM to the process group, then SIGKILL to the group if the command
  // has not exited after this long.
  std::chrono::milliseconds kill_grace{2000};
  std::size_t stderr_tail_bytes = 2000;  // how much of the end of stderr to keep
};

struct CommandResult {
  enum class Outcome { kExited, kSignaled, kTimedOut, kStopped, kSpawnFailed };
  Outcome outcome = Outcome::kSpawnFailed;
  // The status the command exited with, whatever the outcome (a command that exits by itself
  // after SIGTERM still has one); -1 if it did not exit normally or its status was lost.
  int exit_code = -1;
  // The signal that killed the command, whatever the outcome; 0 if it was not killed.
  int signal = 0;
  // The last stderr_tail_bytes bytes of stderr; when stderr was longer, the cut is moved forward
  // past any partial UTF-8 sequence.
  std::string stderr_tail;
  bool stderr_truncated = false;  // stderr was longer than stderr_tail_bytes
  // kTimedOut: the limit that elapsed (spec.timeout), so that describe() can name it.
  std::chrono::milliseconds timeout{0};
  std::string spawn_error;  // kSpawnFailed: e.g. "cannot run 'foo': No such file or directory"
  // The last line of each directive of the stdout protocol (parse_directive_line), its
  // argument as written: `result <json>`, `snooze <duration>`, `fail <message>`.
  std::optional<std::string> result;
  std::optional<std::string> snooze;
  std::optional<std::string> fail;

  // Exited with status 0.
  bool ok() const;
  // One line for a job's error_message, e.g. "command exited with status 3: <stderr tail>",
  // "command killed by signal 9 (Killed)", "command timed out after 1.5s and was killed",
  // "command stopped (worker shutting down)", "cannot run 'foo': No such file or directory".
  // The stderr tail, when there is one, follows a ": " with its trailing whitespace removed, its
  // line breaks shown as " | " and other control characters as spaces, after "..." if cut.
  std::string describe() const;
};

using ProgressFn = std::function<void(int percent, std::string_view message)>;

// Runs the command to completion. Thread-safe: called concurrently from several executor
// threads. Never throws for a command that cannot be started (outcome kSpawnFailed); throws
// std::system_error only if the I/O loop itself fails (ppoll), and rethrows what on_progress
// throws — in both cases after the command's tree has been killed and its supervisor reaped. A stop
// already requested on entry returns kStopped without starting the command.
CommandResult run_command(const CommandSpec& spec, std::string_view stdin_data,
                          const ProgressFn& on_progress, std::stop_token stop);

// The stdout progress protocol, exposed for tests and for documentation of job commands:
// `progress <percent> [<message>]`, where percent is an integer (optionally negative) that may
// carry a decimal part, which is truncated; blanks separate the fields; the message is the rest
// of the line and may be empty; one trailing '\r' is ignored. `message` points into `line`.
struct ProgressLine {
  int percent = 0;
  std::string_view message;
};
std::optional<ProgressLine> parse_progress_line(std::string_view line);

// The other lines of the stdout protocol: a keyword (`result`, `snooze`, `fail`), blanks, and
// the argument, the rest of the line (one trailing '\r' ignored; it may be empty). nullopt for
// any other line. `argument` points into `line`.
struct DirectiveLine {
  enum class Kind { kResult, kSnooze, kFail };
  Kind kind = Kind::kResult;
  std::string_view argument;
};
std::optional<DirectiveLine> parse_directive_line(std::string_view line);

namespace detail {
// write(2) that cannot raise SIGPIPE in this process: SIGPIPE is blocked in the calling thread
// for the duration, and the SIGPIPE generated by an EPIPE is consumed before the mask is
// restored. Returns what write returns, with errno preserved. Exposed for tests.
ssize_t write_without_sigpipe(int fd, const void* data, std::size_t size);
}  // namespace detail

}  // namespace ergon::commands
