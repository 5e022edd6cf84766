// open_store(): picks the backend from the URL's scheme.
#include <algorithm>

#include "ergon/error.h"
#include "store/postgres/postgres_store.h"
#include "store/sqlite/sqlite_store.h"
#include "store/store.h"
#include "store/text_rules.h"

namespace ergon {

void check_type_limit(const TypeLimit& l) {
  check_identifier("job type", l.job_type, kMaxJobTypeBytes);
  if (!l.max_running && !l.rate_limit) {
    throw Error(ErrorCode::kInvalidArgument,
                "a limit needs a concurrency limit, a rate limit or both");
  }
  if (l.max_running && *l.max_running < 0) {
    throw Error(ErrorCode::kInvalidArgument, "a concurrency limit must not be negative");
  }
  if (l.rate_limit) {
    if (*l.rate_limit < 0) {
      throw Error(ErrorCode::kInvalidArgument, "a rate limit must not be negative");
    }
    if (l.rate_period < std::chrono::milliseconds(1) ||
        l.rate_period > std::chrono::hours(24 * 31)) {
      throw Error(ErrorCode::kInvalidArgument, "a rate limit's period must be 1 ms to 31 days");
    }
  }
}

std::string truncate_utf8(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  std::size_t cut = max_bytes;
  // Step back over continuation bytes (10xxxxxx) so the cut lands on a character boundary.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return std::string(text.substr(0, cut));
}

std::vector<ThroughputBucket> throughput_buckets(TimePoint since, Duration bucket, TimePoint now) {
  if (bucket <= Duration::zero()) {
    throw Error(ErrorCode::kInvalidArgument, "throughput bucket must be positive");
  }
  std::vector<ThroughputBucket> out;
  if (since > now) return out;
  auto n = (now - since) / bucket + 1;
  if (n > 10000) {
    throw Error(ErrorCode::kInvalidArgument, "throughput asks for more than 10000 buckets");
  }
  out.resize(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < out.size(); ++i) out[i].start = since + bucket * static_cast<int>(i);
  return out;
}

std::shared_ptr<Store> open_store(std::string_view url, const StoreOptions& options) {
  Clock& clock = options.clock ? *options.clock : Clock::system();
  if (url.starts_with("sqlite:")) {
    auto store = std::make_shared<sqlite::SqliteStore>(sqlite::parse_sqlite_url(url), clock,
                                                       options.create_if_missing);
    if (options.migrate) {
      store->schema_migrate();
    } else if (options.check_schema) {
      store->schema_check();
    }
    return store;
  }
  if (url.starts_with("postgres://") || url.starts_with("postgresql://")) {
    // The database must exist (Ergon creates only its schema, on migrate), so
    // create_if_missing does not apply.
    auto store =
        std::make_shared<postgres::PostgresStore>(postgres::parse_postgres_url(url), clock);
    if (options.migrate) {
      store->schema_migrate();
    } else if (options.check_schema) {
      store->schema_check();
    }
    return store;
  }
  throw Error(ErrorCode::kInvalidArgument, "unknown database URL '" + std::string(url) +
                                               "': expected sqlite:PATH or postgresql://...");
}

std::vector<int> migrate(Store& store) { return store.schema_migrate(); }

}  // namespace ergon
