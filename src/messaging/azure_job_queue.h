// messaging/azure_job_queue.h — JobQueue on Azure Storage Queues: the message text is
// the job id; a message that names no job, or was delivered more than max_deliveries times,
// moves to "<queue>-poison" with its text unchanged, for a person to look at.
#pragma once

#include <memory>

#include "ergon/options.h"
#include "messaging/job_queue.h"

namespace ergon::messaging {

std::unique_ptr<JobQueue> make_azure_job_queue(const MessagingOptions& options);

}  // namespace ergon::messaging
