#include "commands/command_supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace ergon::commands {
namespace {

// Where the supervisor keeps its descriptors once it has tidied them: the command's stdin,
// stdout and stderr at 0-2 (the command inherits them as they are), then its own.
constexpr int kReportSlot = 3;
constexpr int kControlSlot = 4;
constexpr int kStatusSlot = 5;
constexpr int kLockSlot = 6;
constexpr int kSlots = 7;

// ---------------------------------------------------------------------------------------------
// The supervisor (after fork: system calls only).

[[noreturn]] void die_reporting(int fd, int err) {
  const ssize_t ignored = ::write(fd, &err, sizeof err);
  static_cast<void>(ignored);
  ::_exit(127);
}

// Moves the descriptors the supervisor keeps into their slots and closes every other one: the
// worker's other pipes (another command's control pipe among them, whose end-of-file must not
// wait for us) and the owner lock. Every source is first copied above every slot, so that no
// dup2 overwrites a source that is still to be moved.
void arrange_descriptors(const detail::SupervisorPlan& p) {
  const int wanted[kSlots] = {p.stdin_fd,   p.stdout_fd, p.stderr_fd, p.report_fd,
                              p.control_fd, p.status_fd, p.lock_fd};
  int base = kSlots;
  for (const int fd : wanted) base = std::max(base, fd + 1);
  int moved[kSlots];
  for (int i = 0; i < kSlots; ++i) {
    moved[i] = wanted[i] < 0 ? -1 : ::fcntl(wanted[i], F_DUPFD_CLOEXEC, base);
    if (wanted[i] >= 0 && moved[i] < 0) die_reporting(p.report_fd, errno);
  }
  for (int i = 0; i < kSlots; ++i) {
    if (moved[i] < 0) {
      ::close(i);
      continue;
    }
    // The command's stdio without close-on-exec; ours with it (the command never sees them).
    const int r = i <= STDERR_FILENO ? ::dup2(moved[i], i) : ::dup3(moved[i], i, O_CLOEXEC);
    if (r < 0) die_reporting(moved[kReportSlot], errno);
  }
  ::close_range(kSlots, ~0U, 0);
}

// In the command's process, between fork and exec.
[[noreturn]] void exec_command(const detail::SupervisorPlan& p, pid_t supervisor) {
  // The supervisor is single-threaded, so the death signal is tied to it and nothing else: if
  // it is killed outright, the command does not outlive it.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != supervisor) ::_exit(127);
  // A group of its own, so that a timeout or a stop signals the whole tree with one kill.
  ::setpgid(0, 0);
  // Handlers are reset by exec, SIG_IGN is not; the mask survives exec too: the command starts
  // with every disposition at its default and nothing blocked, whatever the worker ignores.
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &default_action, nullptr);
  }
  // glibc's sigaction refuses the signals it keeps for itself (32 and 33, below SIGRTMIN), yet
  // a process that launched the worker may have ignored them (Go programs do, through the
  // system call), and exec would pass that on: reset them through the system call too. The
  // kernel's struct sigaction: handler, flags, restorer, then the mask.
  struct {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)();
    unsigned long mask;
  } kernel_default{SIG_DFL, 0, nullptr, 0};
  for (int sig = 32; sig < SIGRTMIN; ++sig) {
    ::syscall(SYS_rt_sigaction, sig, &kernel_default, nullptr, sizeof kernel_default.mask);
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (p.working_directory != nullptr && ::chdir(p.working_directory) != 0) {
    die_reporting(kReportSlot, errno);
  }
  ::close_range(kReportSlot + 1, ~0U, 0);
  ::execve(p.program, p.argv, p.envp);
  die_reporting(kReportSlot, errno);
}

void drain(int fd) {
  char buffer[256];
  while (::read(fd, buffer, sizeof buffer) > 0) {
  }
}

// SIGKILLs every current child of this process, as /proc lists them; false if the list cannot
// be read (no /proc, or a kernel without CONFIG_PROC_CHILDREN).
bool kill_children() {
  const int fd = ::open("/proc/thread-self/children", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buffer[512];
  long pid = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      if (buffer[i] >= '0' && buffer[i] <= '9') {
        pid = pid * 10 + (buffer[i] - '0');
      } else if (pid > 0) {
        ::kill(static_cast<pid_t>(pid), SIGKILL);
        pid = 0;
      }
    }
  }
  if (pid > 0) ::kill(static_cast<pid_t>(pid), SIGKILL);
  ::close(fd);
  return true;
}

// Reaps the children that have exited, except the command: its zombie keeps its pid, and so
// its process group id, from being reused while we may still signal the group. True once the
// command has exited.
bool reap_all_but_command(pid_t command) {
  for (;;) {
    siginfo_t info{};
    if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0) return false;
    if (info.si_pid == 0) return false;
    if (info.si_pid == command) return true;
    int ignored = 0;
    ::waitpid(info.si_pid, &ignored, 0);
  }
}

// Reaps every child that has exited; records the command's status. False once no child is left.
bool reap(pid_t command, int& status, bool& command_reaped) {
  for (;;) {
    int st = 0;
    const pid_t r = ::waitpid(-1, &st, WNOHANG);
    if (r > 0) {
      if (r == command) {
        status = st;
        command_reaped = true;
      }
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    return r == 0;
  }
}

// Ends the command's tree: its group, while the command is not reaped yet (so the group id is
// still its own), then whatever is reparented to us (grandchildren whose parent died,
// processes that left the group), round after round until no child is left. The rounds are
// bounded by a short poll because /proc's list of children can miss a process that is
// reparented while it is read.
void end_tree(pid_t command, int sigfd, int& status, bool& command_reaped) {
  ::kill(-command, SIGKILL);
  for (;;) {
    if (!kill_children()) {
      // Without the list, processes outside the group cannot be found: reap the command and
      // stop, which is what a process group kill alone achieves.
      ::kill(command, SIGKILL);
      while (::waitpid(command, &status, 0) < 0 && errno == EINTR) {
      }
      command_reaped = true;
      return;
    }
    drain(sigfd);  // before reaping: a child that dies after the reap raises a fresh SIGCHLD
    if (!reap(command, status, command_reaped)) return;
    pollfd wait_child{sigfd, POLLIN, 0};
    ::poll(&wait_child, 1, 50);
  }
}

}  // namespace

namespace detail {

[[noreturn]] void supervise(const SupervisorPlan& plan) {
  // The supervisor obeys its control pipe only. With every signal blocked (SIGKILL aside), a
  // Ctrl-C to the worker's terminal or a stray signal cannot end it before the command's tree.
  sigset_t all;
  sigfillset(&all);
  ::sigprocmask(SIG_SETMASK, &all, nullptr);
  arrange_descriptors(plan);
  // Out of the worker's process group, so that `kill -9 -<worker group>` leaves it to clean up.
  ::setpgid(0, 0);
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) die_reporting(kReportSlot, errno);
  // With SIGCHLD ignored (the worker's choice), children would be reaped by the kernel and
  // the command's status lost.
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  ::sigaction(SIGCHLD, &default_action, nullptr);
  sigset_t sigchld;
  sigemptyset(&sigchld);
  sigaddset(&sigchld, SIGCHLD);
  const int sigfd = ::signalfd(-1, &sigchld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sigfd < 0) die_reporting(kReportSlot, errno);

  const pid_t self = ::getpid();
  // vfork, not fork: the supervisor is a copy of the whole worker, and a second copy of its page
  // tables doubled the cost of a command start in a big worker (bench/command-start.sh: 256 MiB
  // resident, 23 ms for fork + exec, 56 ms with a forking supervisor). The supervisor is
  // single-threaded and waits until the command has exec'd; the command's code before exec
  // only makes system calls (its own signal mask and dispositions: vfork shares memory, not
  // signal handlers or descriptors).
  const pid_t command = ::vfork();
  if (command < 0) die_reporting(kReportSlot, errno);
  if (command == 0) exec_command(plan, self);
  // vfork returns once the command has exec'd, so its setpgid is done: the group exists.
  // The command has the report pipe and its stdio now; ours would keep the worker from seeing
  // the end of the report (exec succeeded) and of stdout/stderr.
  ::close(kReportSlot);
  const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; ++fd) {
    if (null >= 0) {
      ::dup2(null, fd);
    } else {
      ::close(fd);
    }
  }
  if (null > STDERR_FILENO) ::close(null);

  bool command_exited = false;
  bool worker_gone = false;
  while (!command_exited && !worker_gone) {
    pollfd fds[2] = {{kControlSlot, POLLIN, 0}, {sigfd, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;  // cannot watch: end the command rather than leave it unwatched
    }
    if (fds[0].revents != 0) {
      unsigned char signals[64];
      const ssize_t n = ::read(kControlSlot, signals, sizeof signals);
      // End of file: the worker process is gone (nobody else holds the write end).
      if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) worker_gone = true;
      for (ssize_t i = 0; i < n; ++i) {
        ::kill(-command, signals[i]);
        // A stopped (SIGSTOP) member would keep SIGTERM pending forever; let it run.
        if (signals[i] == SIGTERM) ::kill(-command, SIGCONT);
      }
    }
    if (fds[1].revents != 0) drain(sigfd);
    command_exited = reap_all_but_command(command);
  }
  int status = 0;
  bool command_reaped = false;
  end_tree(command, sigfd, status, command_reaped);
  if (command_reaped) {
    const ssize_t ignored = ::write(kStatusSlot, &status, sizeof status);
    static_cast<void>(ignored);
  }
  ::_exit(0);
}

}  // namespace detail

}  // namespace ergon::commands
