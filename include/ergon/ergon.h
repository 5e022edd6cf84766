// ergon/ergon.h — everything an application needs, in one include.
//
// Start here:
//   ergon/job.h          defining job types and handlers (JobHandler<T>, JobContext, registry)
//   ergon/store.h        opening the database (open_store, JobRecord)
//   ergon/job_runner.h   starting jobs (start_job and its transactional twin)
//   ergon/jobs_worker.h  running them (JobsWorker)
//   ergon/options.h      JobOptions, WorkerOptions
//   ergon/schedule.h     recurring jobs: ScheduleOptions, policies
//   ergon/cron.h         cron expressions (parse, next, previous) in time zones
//   ergon/config.h       the JSON configuration file
//   ergon/clock.h        the injectable clock (FakeClock for tests)
//   ergon/error.h        the error model
#pragma once

#include "ergon/clock.h"
#include "ergon/config.h"
#include "ergon/cron.h"
#include "ergon/error.h"
#include "ergon/job.h"
#include "ergon/job_runner.h"
#include "ergon/jobs_worker.h"
#include "ergon/logging.h"
#include "ergon/options.h"
#include "ergon/schedule.h"
#include "ergon/store.h"
#include "ergon/time_range.h"
#include "ergon/types.h"
