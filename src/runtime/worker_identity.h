// runtime/worker_identity.h — who a worker process is, and when a registered one is provably
// gone (docs/reliability.md, "Worker identity").
//
// A host name and a pid do not name a process: a pid is reused, containers share a host name
// but not a PID namespace, and a reboot starts the pids again. A process is named here by the
// kernel's boot id, the inode of its PID namespace and its pid with its start time (clock
// ticks since boot). A registered worker is provably dead only when it ran under this boot and
// in this PID namespace and its pid is free or belongs to a process started at another time;
// anything else (another machine, container or boot, an identity not recorded) proves nothing,
// and only the age of its heartbeat may say it is gone.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "ergon/store.h"

namespace ergon::runtime {

// This process: host name, pid, boot id, PID namespace and start time. Fields that cannot be
// read (no /proc) stay empty or 0, and then nothing is ever proved about this process's peers.
WorkerRecord this_process();

// The start time of `pid` in clock ticks since boot (field 22 of /proc/<pid>/stat), as the
// /proc of this process sees it; nullopt when there is no such process or it has exited (a
// zombie not reaped yet).
std::optional<std::int64_t> process_start_time(int pid);

// Whether `w`'s process is provably gone, judged from `me` (this_process()).
bool provably_dead(const WorkerRecord& w, const WorkerRecord& me);

}  // namespace ergon::runtime
