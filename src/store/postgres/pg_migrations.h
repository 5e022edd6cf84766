// store/postgres/pg_migrations.h — the versioned schema of the PostgreSQL backend.
//
// The same list (store/schema.h) as the SQLite backend's (sqlite_migrations.h), version for
// version, so that a migration added there is mirrored here with the same number. Each migration's
// SQL names Ergon's schema as @SCHEMA@; schema_sql() replaces it with the quoted identifier of the
// store's schema, so one application's tables never land in another's schema.
// PostgresStore::schema_migrate and schema_check, which apply and check them, are in
// pg_migrations.cc too.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "store/schema.h"

namespace ergon::postgres {

std::span<const Migration> migrations();
int latest_schema_version();

// `sql` with every @SCHEMA@ replaced by `quoted_schema` (already escaped and quoted).
std::string schema_sql(std::string_view sql, std::string_view quoted_schema);
// `sql` with every `placeholder` replaced by `value` (the store's statements fill their other
// placeholders this way too; postgres_internal.h).
std::string replace_placeholder(std::string_view sql, std::string_view placeholder,
                                std::string_view value);

}  // namespace ergon::postgres
