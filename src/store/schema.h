// store/schema.h — what the backends' versioned schemas share: the shape of a migration and the
// errors for a database whose schema is not this build's. Each backend keeps its own list of
// migrations (sqlite_migrations.cc, pg_migrations.cc), version for version.
#pragma once

#include <string_view>

namespace ergon {

struct Migration {
  int version;
  const char* sql;  // one or more statements, run inside the migrating transaction
};

// Throws Error(kSchema) when the database's schema `version` is newer than this build's
// `latest`: an older build must neither migrate nor use it.
void refuse_newer_schema(int version, int latest);

// Throws Error(kSchema) unless `version` is `latest`: no schema (version 0; `where` names the
// place looked in, e.g. " in schema 'x'", or is empty), an older one, or a newer one.
void require_schema_version(int version, int latest, std::string_view where = {});

}  // namespace ergon
