// ops/audit.h — the audit log of operators' actions: what every action below records, and
// the listing `ergon audit` and the dashboard show.
//
// An action is recorded after it is done (ARCHITECTURE.md, "Dashboard actions are audited
// after they are done"): a record that cannot be written does not undo the action, so
// record() never throws; it returns the failure and each caller tells its user (the dashboard
// answers `audited: false`, the CLI fails with the error). Thread-safety: as the Store's.
#pragma once

#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ergon/store.h"  // AuditRecord; Store is declared there

namespace ergon::ops {

// Whether an action's audit record was written.
struct Audited {
  std::exception_ptr error;  // null when it was written
  [[nodiscard]] bool ok() const { return !error; }
  [[nodiscard]] std::string message() const;  // the error's what(); empty when ok
};

class AuditLog {
 public:
  explicit AuditLog(std::shared_ptr<Store> store) : store_(std::move(store)) {}

  // Records that `actor` ("cli:alice", "dashboard:127.0.0.1") did `action` to `target`, now.
  Audited record(std::string_view actor, std::string_view action, std::string_view target,
                 std::string_view detail = {}) const;
  // The latest `limit` (1..10000) records, newest first.
  [[nodiscard]] std::vector<AuditRecord> list(int limit) const;

 private:
  std::shared_ptr<Store> store_;
};

}  // namespace ergon::ops
