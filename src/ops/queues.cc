#include "ops/queues.h"

namespace ergon::ops {

Audited Queues::pause(std::string_view name, std::string_view actor) {
  runner_.pause_queue(name);
  return audit_.record(actor, "queue.pause", name);
}

Audited Queues::resume(std::string_view name, std::string_view actor) {
  runner_.resume_queue(name);
  return audit_.record(actor, "queue.resume", name);
}

}  // namespace ergon::ops
