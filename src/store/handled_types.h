// store/handled_types.h — which job types the live workers claim, and the Pending jobs that
// none of them will (WorkerOptions::claim_unhandled_types, `ergon stats`, the dashboard).
//
// A worker registers the types it has handlers for (WorkerRecord::job_types), stored as a JSON
// array on both backends. The jobs no live worker claims are worked out here, above the
// backends, from the registry and the Pending counts per type.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ergon/store.h"

namespace ergon {

class Store;

// WorkerRecord::job_types as stored: a JSON array, or nullopt (every type).
[[nodiscard]] std::optional<std::string> worker_types_json(const WorkerRecord& w);
// The stored text back; a value that is not an array of strings throws Error(kStore).
[[nodiscard]] std::vector<std::string> worker_types_parse(std::string_view json);

// The Pending jobs per type that no worker alive at `now` (heartbeat within `alive_within`)
// claims, by type. Empty when a live worker claims every type.
[[nodiscard]] std::vector<JobTypeCount> unhandled_job_types_of(Store& store, TimePoint now,
                                                               Duration alive_within);

}  // namespace ergon
