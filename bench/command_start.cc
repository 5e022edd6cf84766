// command_start: what starting a command costs. A timed loop of run_command() on /bin/true
// (the supervisor process, its fork of the command, the pipes, the lock file) against a bare
// fork + exec + wait of the same program, in a process with 0 and then 256 MiB resident: fork
// copies page tables, so the bigger the worker, the dearer each fork, and run_command forks
// twice (the worker forks the supervisor, the supervisor forks the command).
// bench/command-start.sh builds and runs it. Nothing here is a test: it prints figures.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "commands/command_process.h"

namespace {

double microseconds_per_run(int runs, const std::function<void()>& run) {
  run();  // warm-up: the lock file, the page cache
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < runs; ++i) run();
  const std::chrono::duration<double, std::micro> elapsed =
      std::chrono::steady_clock::now() - start;
  return elapsed.count() / runs;
}

void run_command_true() {
  ergon::commands::CommandSpec spec;
  spec.argv = {"/bin/true"};
  if (!ergon::commands::run_command(spec, "", nullptr, {}).ok()) std::abort();
}

void fork_exec_true() {
  char program[] = "/bin/true";
  char* argv[] = {program, nullptr};
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execv(program, argv);
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
}

}  // namespace

int main(int argc, char** argv) {
  const int runs = argc > 1 ? std::atoi(argv[1]) : 2000;
  std::printf("%-12s %12s %14s %10s\n", "resident", "run_command", "fork+exec+wait", "extra");
  for (const std::size_t mib : {std::size_t{0}, std::size_t{256}}) {
    std::vector<char> memory(mib << 20);
    for (std::size_t i = 0; i < memory.size(); i += 4096) memory[i] = 1;
    const double command = microseconds_per_run(runs, run_command_true);
    const double bare = microseconds_per_run(runs, fork_exec_true);
    std::printf("%4zu MiB     %9.0f us %11.0f us %7.0f us\n", mib, command, bare, command - bare);
  }
}
