// runtime/command_lock.h — the lock files that tell a starting worker when the commands of a
// dead worker process on this host are all gone.
//
// Each worker process that runs commands (commands/command_process.h) has one lock file with two
// one-byte ranges. The process holds a write lock on the first for as long as it lives; its
// command supervisors (commands/command_supervisor.h) share a read lock on the second until the
// last of them, and so the last process of its commands, has exited. A worker that starts calls
// wait_for_orphaned_commands() before it gives a dead worker's jobs back (JobsWorker does), so
// no job's next attempt starts while a process of the previous one still runs. The waiting side
// lives here, with the library's worker; the holding side is the command runtime's.
//
// The lock files live in $ERGON_RUNTIME_DIR, else $XDG_RUNTIME_DIR/ergon, else
// /tmp/ergon-<uid>: a directory private to the user (another user could otherwise plant or
// remove lock files).
#pragma once

#include <chrono>

namespace ergon::runtime {

// Waits until every supervisor (and so every command process) of the worker processes of this
// host that are gone has exited, at most `limit`; removes their lock files. Skips the lock
// files of live processes. Returns how many dead processes' lock files it cleared. Call it
// before giving a dead worker's jobs back.
int wait_for_orphaned_commands(std::chrono::milliseconds limit = std::chrono::seconds(10));

// This process's command lock descriptor (the shared range, held on an open file description
// that supervisors inherit), created on first use; -1 if it is unavailable (the commands still
// die with their worker; only a restarted worker cannot wait for them).
int command_lock_fd();

}  // namespace ergon::runtime
