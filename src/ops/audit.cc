#include "ops/audit.h"

#include "store/store.h"

namespace ergon::ops {

std::string Audited::message() const {
  if (!error) return {};
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown error";
  }
}

Audited AuditLog::record(std::string_view actor, std::string_view action, std::string_view target,
                         std::string_view detail) const {
  try {
    store_->audit_insert({.at = store_->clock().now(),
                          .actor = std::string(actor),
                          .action = std::string(action),
                          .target = std::string(target),
                          .detail = std::string(detail)});
    return {};
  } catch (...) {
    return {std::current_exception()};
  }
}

std::vector<AuditRecord> AuditLog::list(int limit) const { return store_->audit_list(limit); }

}  // namespace ergon::ops
