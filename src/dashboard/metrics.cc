// JobMetrics: prometheus-cpp counters fed by worker events, gauges read from the store at
// scrape time (a fresh registry per scrape, so a queue that emptied does not linger).
#include "ergon/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <spdlog/spdlog.h>

#include <map>
#include <mutex>

#include "ergon/time_range.h"
#include "store/store.h"

namespace ergon {
namespace {

using prometheus::Labels;

const prometheus::Histogram::BucketBoundaries& run_time_buckets() {
  static const prometheus::Histogram::BucketBoundaries b = {
      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600};
  return b;
}

const prometheus::Histogram::BucketBoundaries& lag_buckets() {
  static const prometheus::Histogram::BucketBoundaries b = {0.01, 0.05, 0.1, 0.5, 1,
                                                            5,    15,   60,  300, 3600};
  return b;
}

void store_gauges(Store& store, prometheus::Registry& reg) {
  auto& up = prometheus::BuildGauge()
                 .Name("ergon_store_up")
                 .Help("1 when the last scrape could read the store")
                 .Register(reg);
  auto& depth = prometheus::BuildGauge()
                    .Name("ergon_queue_jobs")
                    .Help("Jobs per queue and status, read from the store at scrape time")
                    .Register(reg);
  auto& oldest = prometheus::BuildGauge()
                     .Name("ergon_queue_oldest_pending_age_seconds")
                     .Help("Age of the job waiting longest among those due, per queue")
                     .Register(reg);
  auto& running = prometheus::BuildGauge()
                      .Name("ergon_jobs_running")
                      .Help("Jobs Running in the whole cluster")
                      .Register(reg);
  auto& workers = prometheus::BuildGauge()
                      .Name("ergon_workers_alive")
                      .Help("Registered workers whose heartbeat is under 60 seconds old")
                      .Register(reg);
  try {
    const TimePoint now = store.clock().now();
    double running_total = 0;
    for (const auto& c : store.job_counts(now)) {
      depth.Add({{"queue", c.queue}, {"status", std::string(to_string(c.status))}})
          .Set(static_cast<double>(c.count));
      if (c.status == JobStatus::kRunning) running_total += static_cast<double>(c.count);
      if (c.oldest_due_run_at) {
        oldest.Add({{"queue", c.queue}})
            .Set(std::chrono::duration<double>(elapsed(*c.oldest_due_run_at, now)).count());
      }
    }
    running.Add({}).Set(running_total);
    int alive = 0;
    for (const auto& w : store.worker_list()) {
      if (elapsed(w.heartbeat_at, now) <= std::chrono::seconds(60)) ++alive;
    }
    workers.Add({}).Set(alive);
    up.Add({}).Set(1);
  } catch (const std::exception& e) {
    spdlog::warn("metrics: could not read the store: {}", e.what());
    up.Add({}).Set(0);
  }
}

}  // namespace

class JobMetrics::Impl {
 public:
  Impl()
      : registry_(std::make_shared<prometheus::Registry>()),
        enqueued_(counter("ergon_jobs_enqueued_total", "Jobs enqueued by this process")),
        started_(
            counter("ergon_jobs_started_total", "Attempts started by workers of this process")),
        completed_(counter("ergon_jobs_completed_total", "Jobs completed")),
        failed_(counter("ergon_jobs_failed_total", "Jobs failed for good")),
        retried_(counter("ergon_jobs_retried_total", "Failed attempts scheduled to run again")),
        cancelled_(counter("ergon_jobs_cancelled_total", "Running jobs stopped by cancel()")),
        released_(
            counter("ergon_jobs_released_total", "Jobs put back to Pending by a graceful stop")),
        snoozed_(counter("ergon_jobs_snoozed_total", "Attempts that snoozed")),
        fenced_(counter("ergon_jobs_fenced_total",
                        "Outcomes refused because the job was no longer this attempt's")),
        rescued_(prometheus::BuildCounter()
                     .Name("ergon_jobs_rescued_total")
                     .Help("Orphaned jobs given back by this process's rescuer")
                     .Register(*registry_)
                     .Add({})),
        run_time_(prometheus::BuildHistogram()
                      .Name("ergon_job_run_seconds")
                      .Help("Run time of one attempt, from start to its outcome")
                      .Register(*registry_)),
        lag_(prometheus::BuildHistogram()
                 .Name("ergon_scheduler_lag_seconds")
                 .Help("How late the scheduler fired a slot (fired time minus slot time)")
                 .Register(*registry_)
                 .Add({}, lag_buckets())) {}

  void on_event(const JobEvent& e) {
    const Labels labels = {{"job_type", std::string(e.job_type)}, {"queue", std::string(e.queue)}};
    using K = JobEvent::Kind;
    switch (e.kind) {
      case K::kStarted: {
        started_.Add(labels).Increment();
        std::lock_guard lock(mu_);
        started_at_[{e.id, e.attempt}] = std::chrono::steady_clock::now();
        return;
      }
      case K::kCompleted:
        completed_.Add(labels).Increment();
        break;
      case K::kRetryScheduled:
        retried_.Add(labels).Increment();
        break;
      case K::kFailed:
        failed_.Add(labels).Increment();
        break;
      case K::kCancelled:
        cancelled_.Add(labels).Increment();
        break;
      case K::kReleased:
        released_.Add(labels).Increment();
        break;
      case K::kSnoozed:
        snoozed_.Add(labels).Increment();
        break;
      case K::kFenced:
        fenced_.Add(labels).Increment();
        break;
      case K::kRescued:
        rescued_.Increment(static_cast<double>(e.attempt));  // attempt carries the count
        return;
    }
    // Every other kind ends the attempt: observe its run time.
    std::chrono::steady_clock::time_point start;
    {
      std::lock_guard lock(mu_);
      auto it = started_at_.find({e.id, e.attempt});
      if (it == started_at_.end()) return;  // started before this observer was attached
      start = it->second;
      started_at_.erase(it);
    }
    run_time_.Add(labels, run_time_buckets())
        .Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }

  void enqueued(std::string_view type, std::string_view queue, std::int64_t n) {
    enqueued_.Add({{"job_type", std::string(type)}, {"queue", std::string(queue)}})
        .Increment(static_cast<double>(n));
  }

  void lag(Duration d) { lag_.Observe(std::chrono::duration<double>(d).count()); }

  std::string scrape(Store* store) const {
    auto families = registry_->Collect();
    if (store) {
      prometheus::Registry gauges;
      store_gauges(*store, gauges);
      auto more = gauges.Collect();
      families.insert(families.end(), more.begin(), more.end());
    }
    return prometheus::TextSerializer().Serialize(families);
  }

 private:
  prometheus::Family<prometheus::Counter>& counter(const std::string& name,
                                                   const std::string& help) {
    return prometheus::BuildCounter().Name(name).Help(help).Register(*registry_);
  }

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& enqueued_;
  prometheus::Family<prometheus::Counter>& started_;
  prometheus::Family<prometheus::Counter>& completed_;
  prometheus::Family<prometheus::Counter>& failed_;
  prometheus::Family<prometheus::Counter>& retried_;
  prometheus::Family<prometheus::Counter>& cancelled_;
  prometheus::Family<prometheus::Counter>& released_;
  prometheus::Family<prometheus::Counter>& snoozed_;
  prometheus::Family<prometheus::Counter>& fenced_;
  prometheus::Counter& rescued_;
  prometheus::Family<prometheus::Histogram>& run_time_;
  prometheus::Histogram& lag_;

  std::mutex mu_;
  // When each running attempt started, for the run-time histogram. Guarded by mu_.
  std::map<std::pair<JobId, int>, std::chrono::steady_clock::time_point> started_at_;
};

JobMetrics::JobMetrics() : impl_(std::make_unique<Impl>()) {}
JobMetrics::~JobMetrics() = default;
void JobMetrics::on_event(const JobEvent& event) { impl_->on_event(event); }
void JobMetrics::record_enqueued(std::string_view job_type, std::string_view queue,
                                 std::int64_t n) {
  impl_->enqueued(job_type, queue, n);
}
void JobMetrics::record_scheduler_lag(Duration lag) { impl_->lag(lag); }
std::string JobMetrics::scrape(Store* store) const { return impl_->scrape(store); }

std::function<void(const JobEvent&)> metrics_observer(std::shared_ptr<JobMetrics> metrics,
                                                      std::function<void(const JobEvent&)> next) {
  return [metrics = std::move(metrics), next = std::move(next)](const JobEvent& e) {
    metrics->on_event(e);
    if (next) next(e);
  };
}

std::function<void(std::string_view, Duration)> scheduler_lag_observer(
    std::shared_ptr<JobMetrics> metrics) {
  return [metrics = std::move(metrics)](std::string_view, Duration lag) {
    metrics->record_scheduler_lag(lag);
  };
}

std::string scrape_store_metrics(Store& store) {
  prometheus::Registry gauges;
  store_gauges(store, gauges);
  return prometheus::TextSerializer().Serialize(gauges.Collect());
}

}  // namespace ergon
