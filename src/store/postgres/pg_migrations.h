// store/postgres/pg_migrations.h — the versioned schema of the PostgreSQL backend.
//
// The same list structure as the SQLite backend (sqlite_migrations.h), version for version, so
// that a migration added there is mirrored here with the same number. Each migration's SQL
// names Ergon's schema as @SCHEMA@; schema_sql() replaces it with the quoted identifier of the
// store's schema, so one application's tables never land in another's schema.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace ergon::postgres {

struct Migration {
  int version;
  const char* sql;  // one or more statements, run inside the migrating transaction
};

std::span<const Migration> migrations();
int latest_schema_version();

// `sql` with every @SCHEMA@ replaced by `quoted_schema` (already escaped and quoted).
std::string schema_sql(std::string_view sql, std::string_view quoted_schema);

}  // namespace ergon::postgres
