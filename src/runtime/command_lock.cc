#include "runtime/command_lock.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace ergon::runtime {
namespace {

using std::chrono::milliseconds;

// A lock file has two one-byte ranges, locked with open-file-description locks (they belong to
// an open file, not to a process, so a forked supervisor shares its worker's lock, and locks of
// two descriptors in one process conflict as between processes). The worker process holds a
// write lock on kOwnerByte on a descriptor no supervisor keeps: it is released exactly when the
// worker process is gone. Its supervisors share the worker's read lock on kCommandsByte through
// one inherited open file description, released when the last of them has exited.
constexpr off_t kOwnerByte = 0;
constexpr off_t kCommandsByte = 1;
constexpr const char* kLockPrefix = "commands-";
constexpr const char* kLockSuffix = ".lock";

int ofd_lock(int fd, short type, off_t at) {
  struct flock range {};
  range.l_type = type;
  range.l_whence = SEEK_SET;
  range.l_start = at;
  range.l_len = 1;
  return ::fcntl(fd, F_OFD_SETLK, &range);
}

std::string runtime_dir() {
  if (const char* dir = std::getenv("ERGON_RUNTIME_DIR"); dir != nullptr && *dir != '\0') {
    return dir;
  }
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg != nullptr && *xdg == '/') {
    return std::string(xdg) + "/ergon";
  }
  return "/tmp/ergon-" + std::to_string(::geteuid());
}

// A directory of ours that nobody else can write to (another user could otherwise plant or
// remove lock files); created when `create`.
bool usable_dir(const std::string& dir, bool create) {
  if (create && ::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return false;
  struct stat info {};
  if (::lstat(dir.c_str(), &info) != 0) return false;
  return S_ISDIR(info.st_mode) && info.st_uid == ::geteuid() && (info.st_mode & 022) == 0;
}

int open_lock_file() {
  const std::string dir = runtime_dir();
  if (!usable_dir(dir, true)) {
    spdlog::warn(
        "command lock directory {} is missing or not private to this user: a restarted worker "
        "cannot wait for this worker's commands if it dies",
        dir);
    return -1;
  }
  std::random_device random;
  const std::string name = kLockPrefix + std::to_string(::getpid()) + "-" +
                           std::to_string(random()) + std::to_string(random());
  // Created and locked under a temporary name, then renamed: a scan never sees an unlocked
  // file of a live process (it would take it for a dead one's).
  const std::string temporary = dir + "/." + name + ".tmp";
  const std::string final_path = dir + "/" + name + kLockSuffix;
  const int owner =
      ::open(temporary.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (owner < 0) return -1;
  const int commands = ::open(temporary.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (commands < 0 || ofd_lock(owner, F_WRLCK, kOwnerByte) != 0 ||
      ofd_lock(commands, F_RDLCK, kCommandsByte) != 0 ||
      ::rename(temporary.c_str(), final_path.c_str()) != 0) {
    spdlog::warn("cannot set up the command lock file {}: {}", final_path,
                 ::strerrordesc_np(errno));
    ::unlink(temporary.c_str());
    ::close(owner);
    if (commands >= 0) ::close(commands);
    return -1;
  }
  // `owner` stays open, unused, for the life of the process: its lock says "alive".
  return commands;
}

}  // namespace

int command_lock_fd() {
  static const int fd = open_lock_file();
  return fd;
}

int wait_for_orphaned_commands(milliseconds limit) {
  const std::string dir = runtime_dir();
  if (!usable_dir(dir, false)) return 0;
  std::vector<std::string> names;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* entry = ::readdir(d)) {
      const std::string_view name(entry->d_name);
      if (name.starts_with(kLockPrefix) && name.ends_with(kLockSuffix)) names.emplace_back(name);
    }
    ::closedir(d);
  }
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int cleared = 0;
  for (const std::string& name : names) {
    const std::string path = dir + "/" + name;
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) continue;
    // A read lock on the owner byte is refused while its process lives (recoverers share it).
    if (ofd_lock(fd, F_RDLCK, kOwnerByte) != 0) {
      ::close(fd);
      continue;
    }
    // The process is gone; its supervisors are ending their commands' trees (at once: they
    // saw their control pipes close). No lock call with a timeout exists, so poll.
    milliseconds pause{1};
    bool free = false;
    while (!(free = ofd_lock(fd, F_WRLCK, kCommandsByte) == 0)) {
      if (errno != EAGAIN && errno != EACCES) break;
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) break;
      std::this_thread::sleep_for(
          std::min<std::chrono::steady_clock::duration>(pause, deadline - now));
      pause = std::min(pause * 2, milliseconds(50));
    }
    if (free) {
      ::unlink(path.c_str());
      ++cleared;
    } else {
      spdlog::warn(
          "the commands of a dead worker process ({}) are still running after {} ms; its jobs "
          "are given back anyway",
          path, limit.count());
    }
    ::close(fd);
  }
  if (cleared > 0) {
    spdlog::info("made sure the command processes of {} dead worker process(es) are gone", cleared);
  }
  return cleared;
}

}  // namespace ergon::runtime
