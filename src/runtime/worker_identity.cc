#include "runtime/worker_identity.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>

namespace ergon::runtime {
namespace {

std::string host_name() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) return "unknown";
  return host;
}

std::string boot_id() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return in ? id : std::string();
}

// The inode of this process's PID namespace, when /proc belongs to that namespace: a /proc
// mounted from another namespace (a host's /proc bound into a container) lists other pids
// under the same numbers, so /proc/self must be getpid() for any lookup by pid to mean ours.
std::int64_t pid_namespace() {
  char self[32] = {};
  if (readlink("/proc/self", self, sizeof self - 1) <= 0 || std::atoi(self) != getpid()) return 0;
  struct stat st {};
  if (stat("/proc/self/ns/pid", &st) != 0) return 0;
  return static_cast<std::int64_t>(st.st_ino);
}

}  // namespace

std::optional<std::int64_t> process_start_time(int pid) {
  if (pid <= 0) return std::nullopt;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Field 2 is the command name in parentheses, and may hold spaces and ')': the fields
  // after the last ')' start with field 3 (the state); field 22 is the 20th of them.
  auto close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(close + 1));
  std::string field;
  for (int i = 3; i <= 22; ++i) {
    if (!(rest >> field)) return std::nullopt;
    // A zombie has exited (its threads and its handlers' process groups are gone); only its
    // parent has not reaped it yet.
    if (i == 3 && (field == "Z" || field == "X")) return std::nullopt;
  }
  char* end = nullptr;
  long long ticks = std::strtoll(field.c_str(), &end, 10);
  if (end == field.c_str() || *end != '\0' || ticks <= 0) return std::nullopt;
  return ticks;
}

WorkerRecord this_process() {
  WorkerRecord me;
  me.host = host_name();
  me.pid = getpid();
  me.boot_id = boot_id();
  me.pid_namespace = pid_namespace();
  if (me.pid_namespace != 0) me.process_start = process_start_time(me.pid).value_or(0);
  return me;
}

bool provably_dead(const WorkerRecord& w, const WorkerRecord& me) {
  // Without this process's own identity, or the other's, nothing can be compared.
  if (me.boot_id.empty() || me.pid_namespace == 0 || me.process_start == 0) return false;
  if (w.boot_id != me.boot_id || w.pid_namespace != me.pid_namespace) return false;
  if (w.process_start == 0 || w.pid <= 0) return false;
  // The same boot and namespace: /proc here is the other process's /proc. Its pid is free,
  // or it belongs to a process started at another time (the pid was reused).
  std::optional<std::int64_t> start = process_start_time(w.pid);
  return !start || *start != w.process_start;
}

}  // namespace ergon::runtime
