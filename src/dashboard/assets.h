// dashboard/assets.h — the page's static files, embedded in the binary at build time.
//
// embed_assets.cmake turns every file under src/dashboard/assets/ into a byte array of the
// generated dashboard_assets.cc; assets() lists them by base name. Immutable, thread-safe.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

namespace ergon::dashboard {

struct Asset {
  std::string_view name;  // "index.html", "app.js", ...
  const unsigned char* data;
  std::size_t size;
};

std::span<const Asset> assets();

}  // namespace ergon::dashboard
