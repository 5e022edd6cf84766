# cctz::cctz, the time-zone library of the cron module: from cctz's own CMake package where
# there is one (vcpkg, cctz installed from source), else an imported target over its header and
# library (Debian's libcctz-dev ships no CMake package). Ergon's build and its installed package
# config both include this file, so the exported targets name cctz::cctz, never a path.
if(NOT TARGET cctz::cctz)
  find_package(cctz CONFIG QUIET)
endif()
if(NOT TARGET cctz::cctz)
  find_path(ERGON_CCTZ_INCLUDE_DIR cctz/time_zone.h)
  find_library(ERGON_CCTZ_LIBRARY cctz)
  mark_as_advanced(ERGON_CCTZ_INCLUDE_DIR ERGON_CCTZ_LIBRARY)
  if(ERGON_CCTZ_INCLUDE_DIR AND ERGON_CCTZ_LIBRARY)
    add_library(cctz::cctz UNKNOWN IMPORTED)
    set_target_properties(cctz::cctz PROPERTIES IMPORTED_LOCATION "${ERGON_CCTZ_LIBRARY}"
                          INTERFACE_INCLUDE_DIRECTORIES "${ERGON_CCTZ_INCLUDE_DIR}")
  endif()
endif()
