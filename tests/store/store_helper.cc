// A separate process for the multi-process store tests.
//   store_helper claim URL WORKER   claims until nothing is due; prints one claimed id a line
//   store_helper migrate URL        migrates; prints the versions it applied
//   store_helper fire URL INSTANT   runs the scheduler once at INSTANT; prints jobs enqueued
//   store_helper unique URL KEY N   enqueues N jobs with unique key KEY; prints each id returned
//   store_helper sum URL N          runs a worker whose C++ handler of "sum" jobs ({"a","b"})
//                                   returns {"total": a + b, "note": "é ok"}, until N completed
#include <cstdio>
#include <future>
#include <string>

#include "ergon/ergon.h"
#include "runtime/scheduler.h"
#include "store/store.h"

namespace {

struct Sum {
  static constexpr std::string_view kJobType = "sum";
  int a = 0;
  int b = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Sum, a, b)

// Runs the worker until `n` jobs completed (or a minute passed: exit 1).
int sum(std::shared_ptr<ergon::Store> store, int n) {
  ergon::HandlerRegistry handlers;
  handlers.add<Sum>([](const Sum& s, ergon::JobContext&) {
    return nlohmann::json{{"total", s.a + s.b}, {"note", "é ok"}};
  });
  std::promise<void> done;
  std::atomic<int> completed{0};
  ergon::WorkerOptions o;
  o.on_event = [&](const ergon::JobEvent& e) {
    if (e.kind == ergon::JobEvent::Kind::kCompleted && ++completed == n) done.set_value();
  };
  ergon::JobsWorker worker(std::move(store), std::move(handlers), o);
  worker.start();
  const bool ok = done.get_future().wait_for(std::chrono::minutes(1)) == std::future_status::ready;
  worker.stop();
  return ok ? 0 : 1;
}

}  // namespace

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
    if (mode == "sum" && argc == 4) return sum(std::move(store), std::stoi(argv[3]));
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
