// ergon/metrics.h — Prometheus metrics of jobs, for the dashboard's /metrics.
//
//   auto metrics = std::make_shared<ergon::JobMetrics>();
//   options.on_event = ergon::metrics_observer(metrics);        // a worker in this process
//   options.on_schedule_fired = ergon::scheduler_lag_observer(metrics);
//   ergon::Dashboard dashboard(store, {.metrics = metrics});    // serves /metrics
//
// JobMetrics counts what workers of this process report through WorkerOptions::on_event
// (started, completed, failed, retried, rescued, cancelled, released, snoozed, per job type and
// queue) and observes each attempt's run time in a histogram. scrape() adds gauges read from
// the store at scrape time (queue depth per queue and status, oldest pending age, running jobs,
// workers alive), so a dashboard process with no worker still reports the cluster's state.
//
// Counters live as long as the object: a process restart starts them at zero, as Prometheus
// expects of counters. prometheus-cpp stays out of this header.
//
// Thread-safety: every method may be called from any thread at any time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "ergon/options.h"
#include "ergon/store.h"

namespace ergon {

class JobMetrics {
 public:
  JobMetrics();
  ~JobMetrics();
  JobMetrics(const JobMetrics&) = delete;
  JobMetrics& operator=(const JobMetrics&) = delete;

  // Counts one worker event. Quick and free of I/O: call it from WorkerOptions::on_event.
  // The queue label is JobEvent::queue (empty when the worker does not set it).
  void on_event(const JobEvent& event);
  // Jobs enqueued by this process (JobRunner has no hook: call it where you enqueue).
  void record_enqueued(std::string_view job_type, std::string_view queue, std::int64_t n = 1);
  // How late the scheduler fired a slot (fired time minus slot time).
  void record_scheduler_lag(Duration lag);

  // The Prometheus text exposition format (version 0.0.4): this object's counters and
  // histograms, then gauges read from `store` now (none when it is null). Store errors are
  // reported as the gauge ergon_store_up 0, never thrown.
  [[nodiscard]] std::string scrape(Store* store) const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// A WorkerOptions::on_event callable that feeds `metrics`, then `next` (if set).
std::function<void(const JobEvent&)> metrics_observer(
    std::shared_ptr<JobMetrics> metrics, std::function<void(const JobEvent&)> next = {});

// A WorkerOptions::on_schedule_fired callable that records the scheduler's lag in `metrics`.
std::function<void(std::string_view schedule, Duration lag)> scheduler_lag_observer(
    std::shared_ptr<JobMetrics> metrics);

// The gauges alone, for a process that has no JobMetrics.
std::string scrape_store_metrics(Store& store);

}  // namespace ergon
