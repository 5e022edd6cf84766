// store/sqlite/sqlite_migrations.h — the versioned schema of the SQLite backend.
#pragma once

#include <span>

namespace ergon::sqlite {

struct Migration {
  int version;
  const char* sql;  // one or more statements, run inside the migrating transaction
};

std::span<const Migration> migrations();
int latest_schema_version();

}  // namespace ergon::sqlite
