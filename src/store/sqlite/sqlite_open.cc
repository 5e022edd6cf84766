// Opening an SQLite file: the URL, and the checks that keep a mistaken path from being changed.
#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include "ergon/error.h"
#include "store/sqlite/sqlite_store.h"

namespace ergon::sqlite {
namespace {

namespace fs = std::filesystem;

std::string kind_of(fs::file_type t) {
  switch (t) {
    case fs::file_type::directory:
      return "a directory";
    case fs::file_type::character:
      return "a character device";
    case fs::file_type::block:
      return "a block device";
    case fs::file_type::fifo:
      return "a pipe";
    case fs::file_type::socket:
      return "a socket";
    default:
      return "not a regular file";
  }
}

// The path as a file: URI, for the parameters that only a URI can carry.
std::string file_uri(const std::string& path, std::string_view params) {
  std::string out = "file:";
  for (unsigned char c : path) {
    if (std::isalnum(c) || c == '/' || c == '.' || c == '-' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      static constexpr char kHex[] = "0123456789ABCDEF";
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    }
  }
  return out + "?" + std::string(params);
}

[[noreturn]] void open_failed(sqlite3* db, int rc, const std::string& path) {
  std::string msg = "cannot open sqlite database '" + path +
                    "': " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  sqlite3_close_v2(db);
  throw Error(ErrorCode::kStore, msg);
}

// Opens `name` (the path, or a file: URI for it) with the URL's busy timeout, which the probe
// below needs already: another process may be migrating the file.
sqlite3* open_file(const std::string& name, int flags, const SqliteUrl& url) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(name.c_str(), &db, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) open_failed(db, rc, url.path);
  sqlite3_busy_timeout(db, url.busy_timeout_ms);
  return db;
}

// Reads the header and the schema, which sqlite3_open_v2 does not: SQLITE_OK, or why not.
// A file of another format fails here, as does a WAL database whose reader cannot create its
// -shm file.
int probe(sqlite3* db, const std::string& path) {
  int rc = sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, nullptr);
  if (rc == SQLITE_NOTADB) {
    sqlite3_close_v2(db);
    throw Error(ErrorCode::kInvalidArgument,
                "sqlite:" + path + " is not an SQLite database (file is not a database)");
  }
  return rc;
}

}  // namespace

SqliteUrl parse_sqlite_url(std::string_view url) {
  constexpr std::string_view kScheme = "sqlite:";
  if (!url.starts_with(kScheme)) {
    throw Error(ErrorCode::kInvalidArgument, "not a sqlite URL: '" + std::string(url) + "'");
  }
  std::string_view rest = url.substr(kScheme.size());
  if (rest.starts_with("//")) rest.remove_prefix(2);  // accept sqlite://PATH too
  SqliteUrl out;
  auto q = rest.find('?');
  out.path = std::string(rest.substr(0, q));
  if (out.path.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "sqlite URL has no path: '" + std::string(url) + "'");
  }
  if (q == std::string_view::npos) return out;
  std::string_view params = rest.substr(q + 1);
  while (!params.empty()) {
    auto amp = params.find('&');
    std::string_view kv = params.substr(0, amp);
    params = amp == std::string_view::npos ? std::string_view() : params.substr(amp + 1);
    auto eq = kv.find('=');
    std::string key(kv.substr(0, eq));
    std::string value(eq == std::string_view::npos ? "" : kv.substr(eq + 1));
    if (key == "synchronous") {
      std::string upper;
      for (char c : value) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      if (upper != "OFF" && upper != "NORMAL" && upper != "FULL" && upper != "EXTRA") {
        throw Error(
            ErrorCode::kInvalidArgument,
            "sqlite URL: synchronous must be off, normal, full or extra, not '" + value + "'");
      }
      out.synchronous = upper;
    } else if (key == "busy_timeout_ms") {
      try {
        std::size_t used = 0;
        out.busy_timeout_ms = std::stoi(value, &used);
        if (used != value.size() || out.busy_timeout_ms < 0) throw std::invalid_argument(value);
      } catch (const std::exception&) {
        throw Error(
            ErrorCode::kInvalidArgument,
            "sqlite URL: busy_timeout_ms must be a non-negative integer, not '" + value + "'");
      }
    } else if (key == "mode") {
      if (value != "ro" && value != "rw") {
        throw Error(ErrorCode::kInvalidArgument,
                    "sqlite URL: mode must be ro or rw, not '" + value + "'");
      }
      out.read_only = value == "ro";
    } else {
      throw Error(ErrorCode::kInvalidArgument, "sqlite URL: unknown parameter '" + key + "'");
    }
  }
  return out;
}

sqlite3* open_database(const SqliteUrl& url, bool create_if_missing) {
  const std::string& path = url.path;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) {
    throw Error(ErrorCode::kStore, "cannot open sqlite database '" + path + "': " + ec.message());
  }
  if (fs::exists(st)) {
    // SQLite would read a device as an empty database and write its journal beside it
    // (/dev/null-journal).
    if (!fs::is_regular_file(st)) {
      throw Error(ErrorCode::kInvalidArgument,
                  "sqlite:" + path + " is not a database file (" + kind_of(st.type()) + ")");
    }
  } else if (!create_if_missing || url.read_only) {
    throw Error(ErrorCode::kNotFound, "database file not found: " + path);
  }
  if (!url.read_only) {
    const int create = create_if_missing ? SQLITE_OPEN_CREATE : 0;
    sqlite3* db = open_file(path, SQLITE_OPEN_READWRITE | create, url);
    if (int rc = probe(db, path); rc != SQLITE_OK) open_failed(db, rc, path);
    return db;
  }
  // A WAL database is read through its -shm file, which every writer has. When there is none,
  // a reader that may not write the file would leave a -shm and a -wal it cannot remove (and
  // that its owner could not write), and one that may not write the directory cannot create
  // them: such a reader reads the file as it is, immutable, with no -shm and no locks.
  const auto immutable = [&] {
    sqlite3* db =
        open_file(file_uri(path, "immutable=1"), SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, url);
    if (int rc = probe(db, path); rc != SQLITE_OK) open_failed(db, rc, path);
    return db;
  };
  if (!fs::exists(path + "-shm", ec) && !fs::exists(path + "-wal", ec) &&
      ::access(path.c_str(), W_OK) != 0) {
    return immutable();
  }
  sqlite3* db = open_file(path, SQLITE_OPEN_READONLY, url);
  const int rc = probe(db, path);
  if (rc == SQLITE_OK) return db;
  if (rc != SQLITE_READONLY && rc != SQLITE_CANTOPEN) open_failed(db, rc, path);
  sqlite3_close_v2(db);
  return immutable();
}

}  // namespace ergon::sqlite
