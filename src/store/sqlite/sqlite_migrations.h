// store/sqlite/sqlite_migrations.h — the versioned schema of the SQLite backend.
#pragma once

#include <span>

#include "store/schema.h"

namespace ergon::sqlite {

std::span<const Migration> migrations();
int latest_schema_version();

}  // namespace ergon::sqlite
