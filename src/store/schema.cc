#include "store/schema.h"

#include <string>

#include "ergon/error.h"

namespace ergon {

void refuse_newer_schema(int version, int latest) {
  if (version <= latest) return;
  throw Error(ErrorCode::kSchema, "database schema version " + std::to_string(version) +
                                      " is newer than this build of Ergon (" +
                                      std::to_string(latest) + ")");
}

void require_schema_version(int version, int latest, std::string_view where) {
  if (version == latest) return;
  if (version == 0) {
    throw Error(ErrorCode::kSchema,
                "the database has no Ergon schema" + std::string(where) + "; run `ergon migrate`");
  }
  refuse_newer_schema(version, latest);
  throw Error(ErrorCode::kSchema, "the database schema is at version " + std::to_string(version) +
                                      ", this build needs " + std::to_string(latest) +
                                      "; run `ergon migrate`");
}

}  // namespace ergon
