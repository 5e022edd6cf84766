// A separate process for the multi-process store tests.
//   store_helper claim URL WORKER   claims until nothing is due; prints one claimed id a line
//   store_helper migrate URL        migrates; prints the versions it applied
//   store_helper fire URL INSTANT   runs the scheduler once at INSTANT; prints jobs enqueued
//   store_helper unique URL KEY N   enqueues N jobs with unique key KEY; prints each id returned
#include <cstdio>
#include <string>

#include "ergon/job_runner.h"
#include "runtime/scheduler.h"
#include "store/store.h"

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  std::string mode = argv[1];
  try {
    if (mode == "fire" && argc == 4) {
      auto at = ergon::parse_timestamp(argv[3]);
      if (!at) return 2;
      ergon::FakeClock clock(*at);
      auto store = ergon::open_store(argv[2], {.clock = &clock, .migrate = false});
      ergon::runtime::Scheduler scheduler(*store, {});
      std::printf("%zu\n", scheduler.run_once());
      return 0;
    }
    ergon::StoreOptions o;
    o.migrate = false;
    o.check_schema = false;
    auto store = ergon::open_store(argv[2], o);
    if (mode == "migrate") {
      for (int v : store->schema_migrate()) std::printf("%d\n", v);
      return 0;
    }
    if (mode == "unique" && argc == 5) {
      ergon::JobRunner runner(store);
      ergon::JobOptions o;
      o.unique_key = argv[3];
      for (int i = 0, n = std::stoi(argv[4]); i < n; ++i) {
        std::printf("%s\n", runner.start_job_raw("unique", "{}", o).to_string().c_str());
      }
      return 0;
    }
    if (mode == "claim" && argc == 4) {
      for (;;) {
        auto batch = store->job_claim({argv[3], 5, store->clock().now()});
        if (batch.empty()) return 0;
        for (const auto& r : batch) std::printf("%s\n", r.id.to_string().c_str());
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "store_helper: %s\n", e.what());
    return 1;
  }
  return 2;
}
