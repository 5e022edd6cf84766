// Tests for commands/command_process: real processes (/bin/sh -c scripts), no mocks.
#include "commands/command_process.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "runtime/command_lock.h"

namespace ergon::commands {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Outcome = CommandResult::Outcome;
using SteadyClock = std::chrono::steady_clock;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "ergon-command-process-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

CommandSpec Sh(std::string script) {
  CommandSpec spec;
  spec.argv = {"/bin/sh", "-c", std::move(script)};
  return spec;
}

struct Captured {
  CommandResult result;
  std::vector<std::pair<int, std::string>> progress;
};

Captured RunCapture(const CommandSpec& spec, std::string_view stdin_data = {},
                    std::stop_token stop = {}) {
  Captured run;
  run.result = run_command(
      spec, stdin_data,
      [&run](int percent, std::string_view message) {
        run.progress.emplace_back(percent, std::string(message));
      },
      std::move(stop));
  return run;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream contents;
  contents << in.rdbuf();
  return std::move(contents).str();
}

int CountOpenFds() {
  int count = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator("/proc/self/fd")) ++count;
  return count;
}

bool HasNoChildren() { return ::waitpid(-1, nullptr, WNOHANG) == -1 && errno == ECHILD; }

// Gone: no such process, or a zombie (dead, waiting for its new parent — init here — to reap
// it; some container inits reap late, and a zombie is as dead as a process can be).
bool ProcessGone(pid_t pid) {
  if (::kill(pid, 0) == -1 && errno == ESRCH) return true;
  const std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  const std::size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return stat.empty();
  return stat[paren + 2] == 'Z' || stat[paren + 2] == 'X';
}

// A bounded check, not a synchronisation: the kill has already been sent.
bool WaitUntilGone(pid_t pid) {
  const auto give_up = SteadyClock::now() + 2s;
  while (!ProcessGone(pid)) {
    if (SteadyClock::now() > give_up) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

pid_t ReadPid(const fs::path& path) {
  return static_cast<pid_t>(std::atoi(ReadFile(path).c_str()));
}

bool SigpipeBlocked() {
  sigset_t mask;
  ::pthread_sigmask(SIG_SETMASK, nullptr, &mask);
  return sigismember(&mask, SIGPIPE) == 1;
}

bool SigpipePending() {
  sigset_t pending;
  ::sigpending(&pending);
  return sigismember(&pending, SIGPIPE) == 1;
}

std::string FourMegabytesOfLines() {
  std::string payload;
  payload.reserve(4 * 1024 * 1024 + 100);
  for (int i = 0; payload.size() < 4 * 1024 * 1024; ++i) {
    payload += "line " + std::to_string(i) + " of a payload that nobody reads in one go\n";
  }
  return payload;
}

using Progress = std::vector<std::pair<int, std::string>>;

// ---------------------------------------------------------------------------------------------
// The progress protocol and describe(), without processes.

TEST(ParseDirectiveLine, TakesTheKeywordAndTheRestOfTheLine) {
  using Kind = DirectiveLine::Kind;
  auto d = parse_directive_line("result {\"a\": [1, 2]}\r");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->kind, Kind::kResult);
  EXPECT_EQ(d->argument, "{\"a\": [1, 2]}");
  d = parse_directive_line("snooze\t 00:01:00");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->kind, Kind::kSnooze);
  EXPECT_EQ(d->argument, "00:01:00");
  d = parse_directive_line("fail");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->kind, Kind::kFail);
  EXPECT_EQ(d->argument, "");
  for (const char* other : {"results 1", "failed: x", "Result 1", " result 1", "", "snoozed"}) {
    EXPECT_FALSE(parse_directive_line(other)) << other;
  }
}

TEST(ParseProgressLine, AcceptsTheDocumentedForms) {
  auto p = parse_progress_line("progress 42 copying files");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->percent, 42);
  EXPECT_EQ(p->message, "copying files");

  p = parse_progress_line("progress 99.9 almost\r");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->percent, 99);
  EXPECT_EQ(p->message, "almost");

  p = parse_progress_line("progress 7");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->percent, 7);
  EXPECT_EQ(p->message, "");

  p = parse_progress_line("progress\t-5\t  odd  spacing ");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->percent, -5);  // clamping is the caller's job
  EXPECT_EQ(p->message, "odd  spacing ");

  p = parse_progress_line("progress 150 over");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->percent, 150);
}

TEST(ParseProgressLine, RejectsEverythingElse) {
  for (const char* line : {"", "progress", "progress ", "progress abc", "progress 50abc",
                           "progress 1e3 x", "progress +5", "progress99 x", "Progress 5 x",
                           " progress 5 x", "progressing 5 x", "progress 99999999999 too big"}) {
    EXPECT_FALSE(parse_progress_line(line)) << line;
  }
}

TEST(CommandResult, DescribeIsOneLine) {
  CommandResult r;
  r.outcome = Outcome::kExited;
  r.exit_code = 0;
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.describe(), "command exited with status 0");

  r.exit_code = 3;
  r.stderr_tail = "first\r\nsecond\n\tthird\n\n";
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.describe(), "command exited with status 3: first | second |  third");
  r.stderr_truncated = true;
  EXPECT_EQ(r.describe(), "command exited with status 3: ...first | second |  third");

  r = CommandResult{};
  r.outcome = Outcome::kSignaled;
  r.signal = SIGKILL;
  EXPECT_EQ(r.describe(), "command killed by signal 9 (Killed)");

  r.outcome = Outcome::kTimedOut;
  r.timeout = 1500ms;
  EXPECT_EQ(r.describe(), "command timed out after 1.5s and was killed");
  r.timeout = 30s;
  EXPECT_EQ(r.describe(), "command timed out after 30s and was killed");
  r.timeout = 1ms;
  EXPECT_EQ(r.describe(), "command timed out after 0.001s and was killed");

  r.outcome = Outcome::kStopped;
  EXPECT_EQ(r.describe(), "command stopped (worker shutting down)");
  EXPECT_FALSE(r.ok());
}

TEST(WriteWithoutSigpipe, EpipeDoesNotRaiseSigpipe) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::close(fds[0]);
  ASSERT_FALSE(SigpipeBlocked());
  const ssize_t n = detail::write_without_sigpipe(fds[1], "x", 1);
  const int saved_errno = errno;
  ::close(fds[1]);
  EXPECT_EQ(n, -1);
  EXPECT_EQ(saved_errno, EPIPE);
  EXPECT_FALSE(SigpipePending());
  EXPECT_FALSE(SigpipeBlocked());
}

// ---------------------------------------------------------------------------------------------
// Running commands.

TEST(RunCommand, CommandSeesExactStdinBytes) {
  TempDir dir;
  std::string payload;
  for (int round = 0; round < 3; ++round) {
    for (int byte = 0; byte < 256; ++byte) payload += static_cast<char>(byte);
  }
  payload += "no trailing newline";
  CommandSpec spec = Sh("cat > \"$OUT\"");
  spec.env["OUT"] = (dir.path() / "stdin.bin").string();

  const Captured run = RunCapture(spec, payload);

  EXPECT_TRUE(run.result.ok()) << run.result.describe();
  EXPECT_EQ(run.result.outcome, Outcome::kExited);
  EXPECT_EQ(run.result.exit_code, 0);
  EXPECT_EQ(run.result.describe(), "command exited with status 0");
  EXPECT_EQ(ReadFile(dir.path() / "stdin.bin"), payload);
}

TEST(RunCommand, EnvironmentIsInheritedAndOverridden) {
  CommandSpec spec =
      Sh("printf 'progress 1 %s\\n' \"$ERGON_TEST_VAR\"; printf 'progress 2 %s\\n' \"$HOME\";"
         "printf 'progress 3 %s\\n' \"${PATH:+inherited}\"");
  spec.env["ERGON_TEST_VAR"] = "hello world";
  spec.env["HOME"] = "/overridden/home";

  const Captured run = RunCapture(spec);

  EXPECT_TRUE(run.result.ok()) << run.result.describe();
  EXPECT_EQ(run.progress,
            (Progress{{1, "hello world"}, {2, "/overridden/home"}, {3, "inherited"}}));
}

TEST(RunCommand, RunsInWorkingDirectory) {
  TempDir dir;
  CommandSpec spec = Sh("printf 'progress 0 %s\\n' \"$(pwd -P)\"");
  spec.working_directory = dir.path().string();

  const Captured run = RunCapture(spec);

  EXPECT_TRUE(run.result.ok()) << run.result.describe();
  EXPECT_EQ(run.progress, (Progress{{0, fs::canonical(dir.path()).string()}}));
}

TEST(RunCommand, ParsesProgressLinesAndIgnoresTheRest) {
  const CommandSpec spec =
      Sh("printf 'progress 10 starting\\n';"
         "printf 'progress abc\\n';"
         "printf 'just some output\\n';"
         "printf 'progress 50.7 half way there\\n';"
         "printf 'progress 75 with crlf\\r\\n';"
         "printf 'progress 100\\n';"
         "printf 'progress 101 last line without newline'");

  const Captured run = RunCapture(spec);

  EXPECT_TRUE(run.result.ok()) << run.result.describe();
  EXPECT_EQ(run.progress, (Progress{{10, "starting"},
                                    {50, "half way there"},
                                    {75, "with crlf"},
                                    {100, ""},
                                    {101, "last line without newline"}}));
}

TEST(RunCommand, OverlongStdoutLineIsTruncated) {
  const CommandSpec spec =
      Sh("printf 'progress 5 '; head -c 200000 /dev/zero | tr '\\0' a; printf '\\nprogress 6 "
         "next\\n'");

  const Captured run = RunCapture(spec);

  EXPECT_TRUE(run.result.ok()) << run.result.describe();
  ASSERT_EQ(run.progress.size(), 2u);
  EXPECT_EQ(run.progress[0].first, 5);
  EXPECT_EQ(run.progress[0].second,
            std::string(kMaxStdoutLineBytes - std::string_view("progress 5 ").size(), 'a'));
  EXPECT_EQ(run.progress[1], (std::pair<int, std::string>{6, "next"}));
}

TEST(RunCommand, NoProgressCallbackIsFine) {
  const CommandResult result =
      run_command(Sh("printf 'progress 10 nobody listens\\n'"), "", ProgressFn{}, {});
  EXPECT_TRUE(result.ok()) << result.describe();
}

TEST(RunCommand, ExitStatusAndStderrTailInDescribe) {
  const Captured run = RunCapture(Sh("echo 'first line' >&2; echo 'something broke' >&2; exit 3"));

  EXPECT_EQ(run.result.outcome, Outcome::kExited);
  EXPECT_EQ(run.result.exit_code, 3);
  EXPECT_FALSE(run.result.ok());
  EXPECT_EQ(run.result.stderr_tail, "first line\nsomething broke\n");
  EXPECT_FALSE(run.result.stderr_truncated);
  EXPECT_EQ(run.result.describe(), "command exited with status 3: first line | something broke");
}

TEST(RunCommand, KilledBySignal) {
  const Captured run = RunCapture(Sh("echo dying >&2; kill -KILL $$"));

  EXPECT_EQ(run.result.outcome, Outcome::kSignaled);
  EXPECT_EQ(run.result.signal, SIGKILL);
  EXPECT_EQ(run.result.describe(), "command killed by signal 9 (Killed): dying");
}

TEST(RunCommand, MegabyteOfStderrKeepsOnlyTheTail) {
  const Captured run =
      RunCapture(Sh("yes 0123456789abcdef | head -c 1048576 >&2; printf '\\nthe end' >&2; exit 1"));

  EXPECT_EQ(run.result.exit_code, 1);
  EXPECT_TRUE(run.result.stderr_truncated);
  ASSERT_EQ(run.result.stderr_tail.size(), 2000u);
  EXPECT_TRUE(run.result.stderr_tail.ends_with("0123456789abcdef\nthe end"));
  EXPECT_TRUE(run.result.describe().starts_with("command exited with status 1: ..."));
  EXPECT_TRUE(run.result.describe().ends_with(" | the end"));
}

TEST(RunCommand, StderrTailIsCutAtUtf8Boundary) {
  // "a", "é" (2 bytes), "€" (3 bytes).
  CommandSpec spec = Sh("printf 'a\\303\\251\\342\\202\\254' >&2");
  spec.stderr_tail_bytes = 4;  // would start inside "é"
  EXPECT_EQ(RunCapture(spec).result.stderr_tail, "\xE2\x82\xAC");
  spec.stderr_tail_bytes = 5;
  EXPECT_EQ(RunCapture(spec).result.stderr_tail, "\xC3\xA9\xE2\x82\xAC");
  spec.stderr_tail_bytes = 0;
  EXPECT_EQ(RunCapture(spec).result.stderr_tail, "");
}

TEST(RunCommand, LargeStdinFlowsWhileStdoutFlowsBack) {
  // tee writes everything back on stdout while it reads: with blocking writes on our side this
  // would deadlock as soon as both pipes are full.
  TempDir dir;
  const std::string payload = FourMegabytesOfLines() + "progress 100 all read\n";
  CommandSpec spec = Sh("tee \"$OUT\"");
  spec.env["OUT"] = (dir.path() / "stdin.txt").string();

  const Captured run = RunCapture(spec, payload);

  EXPECT_TRUE(run.result.ok()) << run.result.describe();
  EXPECT_EQ(run.progress, (Progress{{100, "all read"}}));
  EXPECT_TRUE(ReadFile(dir.path() / "stdin.txt") == payload);
}

TEST(RunCommand, LargeStdinToCommandThatNeverReadsIt) {
  const std::string payload = FourMegabytesOfLines();
  for (const char* script : {"exit 0", "head -c 1000 > /dev/null"}) {
    const Captured run = RunCapture(Sh(script), payload);
    EXPECT_TRUE(run.result.ok()) << script << ": " << run.result.describe();
    EXPECT_FALSE(SigpipePending()) << script;
    EXPECT_FALSE(SigpipeBlocked()) << script;
  }
}

TEST(RunCommand, TimeoutKillsTheWholeProcessGroup) {
  TempDir dir;
  const fs::path pid_file = dir.path() / "grandchild.pid";
  CommandSpec spec = Sh("sleep 30 & echo $! > \"$PID_FILE\"; sleep 30");
  spec.env["PID_FILE"] = pid_file.string();
  spec.timeout = 200ms;

  const auto start = SteadyClock::now();
  const Captured run = RunCapture(spec);
  const auto elapsed = SteadyClock::now() - start;

  EXPECT_EQ(run.result.outcome, Outcome::kTimedOut);
  EXPECT_EQ(run.result.signal, SIGTERM);
  EXPECT_EQ(run.result.describe(), "command timed out after 0.2s and was killed");
  EXPECT_GE(elapsed, 200ms);
  EXPECT_LT(elapsed, 1500ms);  // SIGTERM did it: the default kill_grace is 2 s
  const pid_t grandchild = ReadPid(pid_file);
  ASSERT_GT(grandchild, 0);
  EXPECT_TRUE(WaitUntilGone(grandchild));
}

TEST(RunCommand, ExitDoesNotWaitForGrandchildHoldingThePipes) {
  TempDir dir;
  const fs::path pid_file = dir.path() / "grandchild.pid";
  CommandSpec spec = Sh("sleep 30 & echo $! > \"$PID_FILE\"; echo progress 100 done; exit 0");
  spec.env["PID_FILE"] = pid_file.string();

  const auto start = SteadyClock::now();
  const Captured run = RunCapture(spec);
  const auto elapsed = SteadyClock::now() - start;

  EXPECT_TRUE(run.result.ok()) << run.result.describe();
  EXPECT_EQ(run.progress, (Progress{{100, "done"}}));
  EXPECT_LT(elapsed, 1500ms);
  const pid_t grandchild = ReadPid(pid_file);
  ASSERT_GT(grandchild, 0);
  EXPECT_TRUE(WaitUntilGone(grandchild));
}

TEST(RunCommand, IgnoredSigtermIsFollowedBySigkillAfterGrace) {
  // `trap '' TERM` ignores SIGTERM in the shell and, inherited, in its sleep. The stop is
  // requested from the progress callback, so it comes after the trap is in place.
  CommandSpec spec = Sh("trap '' TERM; echo progress 1 ready; sleep 30");
  spec.kill_grace = 200ms;
  std::stop_source source;
  SteadyClock::time_point stop_requested_at;

  const CommandResult result = run_command(
      spec, "",
      [&](int, std::string_view) {
        stop_requested_at = SteadyClock::now();
        source.request_stop();
      },
      source.get_token());
  const auto elapsed = SteadyClock::now() - stop_requested_at;

  EXPECT_EQ(result.outcome, Outcome::kStopped);
  EXPECT_EQ(result.signal, SIGKILL);
  EXPECT_GE(elapsed, 200ms);
  EXPECT_LT(elapsed, 1500ms);
}

TEST(RunCommand, StopRequestedFromAnotherThread) {
  std::stop_source source;
  std::promise<void> started;
  bool signalled = false;
  std::jthread stopper([&source, ready = started.get_future()]() mutable {
    ready.wait();
    source.request_stop();
  });

  const auto start = SteadyClock::now();
  const CommandResult result = run_command(
      Sh("echo progress 1 started; sleep 30"), "",
      [&](int, std::string_view) {
        if (!std::exchange(signalled, true)) started.set_value();
      },
      source.get_token());
  const auto elapsed = SteadyClock::now() - start;

  EXPECT_EQ(result.outcome, Outcome::kStopped);
  EXPECT_EQ(result.signal, SIGTERM);
  EXPECT_EQ(result.describe(), "command stopped (worker shutting down)");
  EXPECT_LT(elapsed, 1500ms);
}

TEST(RunCommand, StopAlreadyRequestedDoesNotStartTheCommand) {
  TempDir dir;
  CommandSpec spec = Sh("touch \"$MARKER\"");
  spec.env["MARKER"] = (dir.path() / "ran").string();
  std::stop_source source;
  source.request_stop();

  const Captured run = RunCapture(spec, "", source.get_token());

  EXPECT_EQ(run.result.outcome, Outcome::kStopped);
  EXPECT_FALSE(fs::exists(dir.path() / "ran"));
}

TEST(RunCommand, MissingCommandIsSpawnFailure) {
  CommandSpec spec;
  spec.argv = {"ergon-no-such-command-7f3a", "arg"};
  CommandResult result = RunCapture(spec).result;
  EXPECT_EQ(result.outcome, Outcome::kSpawnFailed);
  EXPECT_EQ(result.spawn_error,
            "cannot run 'ergon-no-such-command-7f3a': No such file or directory");
  EXPECT_EQ(result.describe(), result.spawn_error);

  spec.argv = {"/nonexistent/ergon-command"};
  result = RunCapture(spec).result;
  EXPECT_EQ(result.outcome, Outcome::kSpawnFailed);
  EXPECT_EQ(result.spawn_error,
            "cannot run '/nonexistent/ergon-command': No such file or directory");
}

TEST(RunCommand, NonExecutableFileIsSpawnFailure) {
  TempDir dir;
  const fs::path script = dir.path() / "not-executable.sh";
  std::ofstream(script) << "#!/bin/sh\nexit 0\n";
  fs::permissions(script, fs::perms::owner_read | fs::perms::owner_write);
  CommandSpec spec;
  spec.argv = {script.string()};

  const CommandResult result = RunCapture(spec).result;

  EXPECT_EQ(result.outcome, Outcome::kSpawnFailed);
  EXPECT_EQ(result.spawn_error, "cannot run '" + script.string() + "': Permission denied");
}

TEST(RunCommand, BadWorkingDirectoryIsSpawnFailure) {
  TempDir dir;
  CommandSpec spec = Sh("exit 0");
  spec.working_directory = (dir.path() / "missing").string();
  CommandResult result = RunCapture(spec).result;
  EXPECT_EQ(result.outcome, Outcome::kSpawnFailed);
  EXPECT_EQ(result.spawn_error, "cannot run '/bin/sh' in working directory '" +
                                    spec.working_directory + "': No such file or directory");

  std::ofstream(dir.path() / "file") << "x";
  spec.working_directory = (dir.path() / "file").string();
  result = RunCapture(spec).result;
  EXPECT_EQ(result.outcome, Outcome::kSpawnFailed);
  EXPECT_EQ(result.spawn_error, "cannot run '/bin/sh' in working directory '" +
                                    spec.working_directory + "': Not a directory");
}

TEST(RunCommand, InvalidSpecsAreSpawnFailures) {
  EXPECT_EQ(RunCapture(CommandSpec{}).result.spawn_error, "empty command");
  EXPECT_EQ(RunCapture(CommandSpec{}).result.describe(), "empty command");

  CommandSpec spec = Sh("exit 0");
  spec.env["A=B"] = "x";
  EXPECT_EQ(RunCapture(spec).result.spawn_error,
            "cannot run '/bin/sh': invalid environment variable name 'A=B'");

  spec = Sh(std::string("exit 0\0oops", 11));
  EXPECT_EQ(RunCapture(spec).result.spawn_error,
            "cannot run '/bin/sh': argument contains a NUL byte");
}

TEST(RunCommand, ExceptionFromProgressCallbackKillsAndReaps) {
  RunCapture(Sh("true"));  // the process's command lock file stays open once made
  const int fds_before = CountOpenFds();
  const auto start = SteadyClock::now();
  EXPECT_THROW(
      run_command(Sh("echo progress 1 boom; sleep 30"), "",
                  [](int, std::string_view) { throw std::runtime_error("callback failed"); }, {}),
      std::runtime_error);
  EXPECT_LT(SteadyClock::now() - start, 1500ms);
  EXPECT_TRUE(HasNoChildren());
  EXPECT_EQ(CountOpenFds(), fds_before);
}

TEST(RunCommand, NoDescriptorOrZombieLeftOnAnyPath) {
  RunCapture(Sh("true"));  // the process's command lock file stays open once made
  const int fds_before = CountOpenFds();
  EXPECT_TRUE(RunCapture(Sh("cat > /dev/null; echo err >&2"), "input").result.ok());
  EXPECT_EQ(RunCapture(Sh("exit 4")).result.exit_code, 4);
  CommandSpec missing;
  missing.argv = {"ergon-no-such-command-7f3a"};
  EXPECT_EQ(RunCapture(missing).result.outcome, Outcome::kSpawnFailed);
  CommandSpec slow = Sh("sleep 30");
  slow.timeout = 50ms;
  EXPECT_EQ(RunCapture(slow).result.outcome, Outcome::kTimedOut);
  EXPECT_EQ(CountOpenFds(), fds_before);
  EXPECT_TRUE(HasNoChildren());
}

TEST(RunCommand, ConcurrentCommandsFromManyThreads) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 2;
  std::vector<Captured> runs(kThreads * kPerThread);
  std::vector<std::string> inputs(runs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    inputs[i] = "payload of command " + std::to_string(i) + std::string(i * 1000, 'x');
  }
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([t, &runs, &inputs] {
        for (int k = 0; k < kPerThread; ++k) {
          const int i = t * kPerThread + k;
          CommandSpec spec =
              Sh("printf 'progress %s ' \"$ERGON_N\"; cat; printf '\\n'; printf 'err-%s' "
                 "\"$ERGON_N\" >&2");
          spec.env["ERGON_N"] = std::to_string(i);
          runs[static_cast<std::size_t>(i)] = RunCapture(spec, inputs[static_cast<std::size_t>(i)]);
        }
      });
    }
  }
  for (std::size_t i = 0; i < runs.size(); ++i) {
    EXPECT_TRUE(runs[i].result.ok()) << i << ": " << runs[i].result.describe();
    EXPECT_EQ(runs[i].progress, (Progress{{static_cast<int>(i), inputs[i]}})) << i;
    EXPECT_EQ(runs[i].result.stderr_tail, "err-" + std::to_string(i));
  }
  EXPECT_TRUE(HasNoChildren());
}

// ---------------------------------------------------------------------------------------------
// Process trees: every process a command starts ends with it, and with its worker process.

// Waits for a line on a FIFO that a command writes once it has started what a test watches.
std::string AwaitFifo(const fs::path& fifo) {
  std::ifstream in(fifo);
  std::string line;
  std::getline(in, line);
  return line;
}

// A command that starts a child, which starts a grandchild, and one process that leaves the
// group with setsid; it records their pids (and its supervisor's, $PPID) in `dir`, says "ready"
// on `dir`/ready, and sleeps.
CommandSpec TreeCommand(const fs::path& dir) {
  CommandSpec spec =
      Sh("echo $PPID > \"$D/supervisor\"; "
         "sh -c 'sleep 30 & echo $! > \"$D/grandchild\"; echo $$ > \"$D/child\"; wait' & "
         "setsid sleep 30 & echo $! > \"$D/escapee\"; "
         "while [ ! -s \"$D/grandchild\" ] || [ ! -s \"$D/child\" ]; do :; done; "
         "echo ready > \"$D/ready\"; sleep 30");
  spec.env["D"] = dir.string();
  return spec;
}

std::vector<pid_t> TreePids(const fs::path& dir) {
  return {ReadPid(dir / "child"), ReadPid(dir / "grandchild"), ReadPid(dir / "escapee")};
}

// The process that stands for a worker in the tests below: this test binary again, running
// only WorkerStandIn.RunsTreeCommand (which does nothing unless ERGON_TEST_TREE_DIR is set).
pid_t StartWorkerStandIn(const fs::path& dir, const fs::path& runtime_dir) {
  ::mkfifo((dir / "ready").c_str(), 0600);
  std::vector<std::string> env = {"ERGON_TEST_TREE_DIR=" + dir.string(),
                                  "ERGON_RUNTIME_DIR=" + runtime_dir.string()};
  for (char** entry = environ; *entry != nullptr; ++entry) env.emplace_back(*entry);
  std::vector<char*> envp;
  for (std::string& entry : env) envp.push_back(entry.data());
  envp.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execle("/proc/self/exe", "command_test", "--gtest_filter=WorkerStandIn.RunsTreeCommand",
             static_cast<char*>(nullptr), envp.data());
    ::_exit(127);
  }
  return pid;
}

TEST(WorkerStandIn, RunsTreeCommand) {
  const char* dir = std::getenv("ERGON_TEST_TREE_DIR");
  if (dir == nullptr) GTEST_SKIP() << "run by the process-tree tests";
  run_command(TreeCommand(dir), "", nullptr, {});
}

TEST(RunCommand, ExitEndsProcessesThatLeftTheGroup) {
  TempDir dir;
  CommandSpec spec =
      Sh("setsid sleep 30 & echo $! > \"$D/escapee\"; "
         "while [ ! -s \"$D/escapee\" ]; do :; done; exit 0");
  spec.env["D"] = dir.path().string();

  EXPECT_TRUE(RunCapture(spec).result.ok());

  // The supervisor reports only once every process of the tree is gone: no waiting here.
  EXPECT_TRUE(ProcessGone(ReadPid(dir.path() / "escapee")));
}

TEST(RunCommand, TheWholeTreeDiesWhenTheWorkerIsKilled) {
  TempDir dir, run;
  const pid_t worker = StartWorkerStandIn(dir.path(), run.path());
  ASSERT_GT(worker, 0);
  ASSERT_EQ(AwaitFifo(dir.path() / "ready"), "ready");
  const std::vector<pid_t> tree = TreePids(dir.path());

  ASSERT_EQ(::kill(worker, SIGKILL), 0);
  ASSERT_EQ(::waitpid(worker, nullptr, 0), worker);

  for (const pid_t pid : tree) {
    ASSERT_GT(pid, 0);
    EXPECT_TRUE(WaitUntilGone(pid)) << pid;
  }
  EXPECT_TRUE(WaitUntilGone(ReadPid(dir.path() / "supervisor")));
}

TEST(WaitForOrphanedCommands, ReturnsOnlyOnceADeadWorkersProcessesAreGone) {
  TempDir dir, run;
  ::setenv("ERGON_RUNTIME_DIR", run.path().c_str(), 1);
  const pid_t worker = StartWorkerStandIn(dir.path(), run.path());
  ASSERT_GT(worker, 0);
  ASSERT_EQ(AwaitFifo(dir.path() / "ready"), "ready");
  const std::vector<pid_t> tree = TreePids(dir.path());
  const pid_t supervisor = ReadPid(dir.path() / "supervisor");

  // A live worker's commands are not waited for.
  EXPECT_EQ(runtime::wait_for_orphaned_commands(10s), 0);
  // The worker dies while its command's supervisor is frozen: its tree still runs, and a
  // recovering worker must not be told otherwise. (An anchor process in the supervisor's group
  // keeps the group from being orphaned by the worker's death: the kernel would send SIGCONT to
  // a stopped member of an orphaned group.)
  const pid_t anchor = ::fork();
  if (anchor == 0) {
    ::alarm(60);
    ::pause();
    ::_exit(0);
  }
  ASSERT_EQ(::setpgid(anchor, supervisor), 0);
  ASSERT_EQ(::kill(supervisor, SIGSTOP), 0);
  ASSERT_EQ(::kill(worker, SIGKILL), 0);
  ASSERT_EQ(::waitpid(worker, nullptr, 0), worker);
  EXPECT_EQ(runtime::wait_for_orphaned_commands(50ms), 0);
  for (const pid_t pid : tree) EXPECT_FALSE(ProcessGone(pid)) << pid;

  ASSERT_EQ(::kill(supervisor, SIGCONT), 0);
  EXPECT_EQ(runtime::wait_for_orphaned_commands(10s), 1);
  for (const pid_t pid : tree) EXPECT_TRUE(ProcessGone(pid)) << pid;
  EXPECT_TRUE(fs::is_empty(run.path()));
  ::kill(anchor, SIGKILL);
  ::waitpid(anchor, nullptr, 0);
  ::unsetenv("ERGON_RUNTIME_DIR");
}

TEST(RunCommand, CommandStartsWithDefaultSignalsAndNothingBlocked) {
  // What a worker does to its own signals (ignore SIGPIPE and SIGHUP, block its stop signals)
  // must not reach the command.
  struct sigaction ignore {
  }, old_pipe{}, old_hup{};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ignore, &old_pipe);
  ::sigaction(SIGHUP, &ignore, &old_hup);
  sigset_t blocked, old_mask;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGTERM);
  sigaddset(&blocked, SIGUSR1);
  ::pthread_sigmask(SIG_BLOCK, &blocked, &old_mask);

  const Captured run =
      RunCapture(Sh("while read key value; do case $key in SigIgn:|SigBlk:) "
                    "echo progress 0 $key $value;; esac; done < /proc/$$/status"));

  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  ::sigaction(SIGPIPE, &old_pipe, nullptr);
  ::sigaction(SIGHUP, &old_hup, nullptr);
  EXPECT_TRUE(run.result.ok()) << run.result.describe();
  EXPECT_EQ(run.progress,
            (Progress{{0, "SigBlk: 0000000000000000"}, {0, "SigIgn: 0000000000000000"}}));
}

}  // namespace
}  // namespace ergon::commands
