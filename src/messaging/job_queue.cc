#include "messaging/job_queue.h"

#include "ergon/error.h"

#ifdef ERGON_HAVE_AZURE
#include "messaging/azure_job_queue.h"
#endif

namespace ergon::messaging {

std::unique_ptr<JobQueue> make_job_queue(const MessagingOptions& options) {
  if (options.transport != "AzureStorageQueues") {
    throw Error(ErrorCode::kConfig, "unknown messaging transport '" + options.transport + "'");
  }
#ifdef ERGON_HAVE_AZURE
  return messaging::make_azure_job_queue(options);
#else
  throw Error(ErrorCode::kUnsupported,
              "this build of Ergon has no Azure Storage Queues transport (it needs libcurl and "
              "OpenSSL at build time: ERGON_WITH_AZURE)");
#endif
}

}  // namespace ergon::messaging
