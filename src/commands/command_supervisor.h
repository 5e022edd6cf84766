// commands/command_supervisor.h — the process between a worker and each command it runs.
//
// run_command() forks a supervisor, which forks the command in a process group of its own and
// stays its parent. The supervisor is a child subreaper (PR_SET_CHILD_SUBREAPER): every
// descendant of the command whose parent dies is reparented to it, including processes that
// left the group with setsid() or setpgid(). It ends the command's whole tree — the group first,
// then every process reparented to it, until it has no child left — when the command exits,
// and at once when the worker process is gone: it reads a control pipe whose write end only the
// worker holds, and end-of-file there means that the worker died, by SIGKILL or otherwise (a
// pipe closes when its last holder dies, whichever thread forked; PR_SET_PDEATHSIG would fire
// when the forking thread ends instead). Only then does it report the command's wait status
// and exit, so "the supervisor has exited" means "no process of that command is left".
//
// The supervisor also holds a shared lock on its worker process's lock file
// (runtime/command_lock.h) until it exits. A worker that starts on the same host calls
// runtime::wait_for_orphaned_commands() before it gives a dead worker's jobs back, so no job's
// next attempt starts while a process of the previous one still runs.
//
// Between fork and exit the supervisor only makes system calls on memory prepared before the
// fork (it is a copy of a multithreaded process: no allocation, no locks).
#pragma once

#include <sys/types.h>

namespace ergon::commands {
namespace detail {

// What the supervisor needs, prepared before the fork.
struct SupervisorPlan {
  const char* program = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const char* working_directory = nullptr;  // nullptr: inherit
  int stdin_fd = -1;                        // the command's ends of its three pipes
  int stdout_fd = -1;
  int stderr_fd = -1;
  int report_fd = -1;   // write end: errno of a failed chdir/exec/fork, for the worker
  int control_fd = -1;  // read end: signal numbers from the worker, one byte each; EOF: gone
  int status_fd = -1;   // write end: the command's wait status once its tree is gone
  int lock_fd = -1;     // this process's command lock (a shared range held while it lives)
};

// Runs in the child of fork(); never returns.
[[noreturn]] void supervise(const SupervisorPlan& plan);

}  // namespace detail
}  // namespace ergon::commands
