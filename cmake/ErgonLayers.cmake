# The layers of src/: one library per module, and the one table that says what each module
# may use. The same table drives two things, so they cannot disagree:
#   * the link: ergon_module() links a module's target to exactly the modules it may use;
#   * the includes: ergon_check_layers() refuses an `#include "MODULE/..."` in a module's files
#     that the table does not allow. It runs at configure time and again before any module is
#     compiled (target ergon_layers), so an upward include fails the build.
# Public headers (include/ergon/) may include only other public headers. ARCHITECTURE.md
# draws this table.
#
# Also usable as a script, which is how the test proves that an upward include is refused:
#   cmake -DERGON_LAYERS_ROOT=DIR -P cmake/ErgonLayers.cmake
# checks DIR/src and DIR/include as laid out here (exit status non-zero and the offending
# file, line and include on a violation).

# Bottom up. A module may use the ones listed after its name (and its own headers).
set(ERGON_LAYERS core cron pq transport store messaging runtime client ops commands dashboard)
set(ERGON_USES_core "")
set(ERGON_USES_cron "")
set(ERGON_USES_pq core)
set(ERGON_USES_transport core pq)
set(ERGON_USES_store core pq transport)
set(ERGON_USES_messaging core)
set(ERGON_USES_runtime core cron transport store messaging)
set(ERGON_USES_client core cron transport store runtime)
set(ERGON_USES_ops core cron store client)
set(ERGON_USES_commands core store runtime)
set(ERGON_USES_dashboard core store client ops)

# Fails with every violation under ROOT listed (FATAL_ERROR), or returns quietly.
function(ergon_check_layers root)
  get_filename_component(root "${root}" ABSOLUTE)
  set(problems "")
  foreach(module IN LISTS ERGON_LAYERS)
    set(allowed ${module} ${ERGON_USES_${module}})
    file(GLOB_RECURSE files "${root}/src/${module}/*.h" "${root}/src/${module}/*.cc")
    foreach(file IN LISTS files)
      file(STRINGS "${file}" lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"[a-z_]+/")
      foreach(line IN LISTS lines)
        string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*\"([a-z_]+)/.*" "\\1" used "${line}")
        if(used STREQUAL "ergon")
          continue()
        endif()
        list(FIND ERGON_LAYERS "${used}" known)
        list(FIND allowed "${used}" ok)
        if(known GREATER -1 AND ok EQUAL -1)
          file(RELATIVE_PATH rel "${root}" "${file}")
          string(STRIP "${line}" line)
          string(APPEND problems "\n  ${rel}: ${line} (${module} may use: ${allowed})")
        endif()
      endforeach()
    endforeach()
  endforeach()
  file(GLOB public "${root}/include/ergon/*.h")
  foreach(file IN LISTS public)
    file(STRINGS "${file}" lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"")
    foreach(line IN LISTS lines)
      if(NOT line MATCHES "\"ergon/")
        file(RELATIVE_PATH rel "${root}" "${file}")
        string(STRIP "${line}" line)
        string(APPEND problems "\n  ${rel}: ${line} (public headers include only ergon/)")
      endif()
    endforeach()
  endforeach()
  if(problems)
    message(FATAL_ERROR "include against the layers (cmake/ErgonLayers.cmake):${problems}")
  endif()
endfunction()

if(CMAKE_SCRIPT_MODE_FILE AND NOT CMAKE_PARENT_LIST_FILE)
  if(NOT ERGON_LAYERS_ROOT)
    message(FATAL_ERROR "usage: cmake -DERGON_LAYERS_ROOT=DIR -P ErgonLayers.cmake")
  endif()
  ergon_check_layers("${ERGON_LAYERS_ROOT}")
  if(ERGON_LAYERS_STAMP)
    file(TOUCH "${ERGON_LAYERS_STAMP}")
  endif()
  return()
endif()

ergon_check_layers("${PROJECT_SOURCE_DIR}")

# Re-checked before any module compiles, whenever a source of src/ or include/ changes.
file(GLOB_RECURSE ERGON_LAYER_SOURCES CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/src/*.h"
     "${PROJECT_SOURCE_DIR}/src/*.cc" "${PROJECT_SOURCE_DIR}/include/ergon/*.h")
add_custom_command(
  OUTPUT ${PROJECT_BINARY_DIR}/ergon_layers.stamp
  COMMAND ${CMAKE_COMMAND} -DERGON_LAYERS_ROOT=${PROJECT_SOURCE_DIR}
          -DERGON_LAYERS_STAMP=${PROJECT_BINARY_DIR}/ergon_layers.stamp
          -P ${CMAKE_CURRENT_LIST_FILE}
  DEPENDS ${ERGON_LAYER_SOURCES} ${CMAKE_CURRENT_LIST_FILE}
  COMMENT "Checking includes against the layers" VERBATIM)
add_custom_target(ergon_layers DEPENDS ${PROJECT_BINARY_DIR}/ergon_layers.stamp)

# ergon_module(NAME [STATIC] SOURCES...): the library ergon_NAME of src/NAME, linked PRIVATE to
# the modules ERGON_USES_NAME lists (each must have been added before it: bottom up) and to
# LIBS. Every module compiles with the same flags, so that the precompiled header built for
# ergon_core serves them all.
#
# A module is a static library, or with BUILD_SHARED_LIBS=ON a shared one (libergon_NAME.so;
# STATIC keeps a module static either way: the CLI's own). One shared library per module
# keeps the layers, and what each module links, the same in both builds. Symbols keep the
# default visibility on purpose: the modules call each other's internal classes (src/*.h)
# across the library boundaries, so hiding them would need export macros on most of src/ as
# well as on include/ergon/, and Ergon promises no ABI beyond a minor version anyway
# (ergonConfigVersion.cmake: SameMinorVersion; SOVERSION is MAJOR.MINOR). Every module is
# position-independent, static ones included: a static Ergon can go into a consumer's shared
# library, and the static and shared builds compile the same objects (ccache serves both).
function(ergon_module name)
  cmake_parse_arguments(M "STATIC" "" "SOURCES;LIBS;PUBLIC_LIBS" ${ARGN})
  list(FIND ERGON_LAYERS ${name} known)
  if(known EQUAL -1)
    message(FATAL_ERROR "ergon_module(${name}): not in ERGON_LAYERS (cmake/ErgonLayers.cmake)")
  endif()
  if(M_STATIC)
    add_library(ergon_${name} STATIC ${M_SOURCES})
  else()
    add_library(ergon_${name} ${M_SOURCES})
  endif()
  # DEFINE_SYMBOL "": no ergon_NAME_EXPORTS definition in a shared build (nothing reads it), so
  # both builds compile with the same command lines.
  set_target_properties(ergon_${name} PROPERTIES POSITION_INDEPENDENT_CODE ON DEFINE_SYMBOL ""
    VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR}
    INSTALL_RPATH "$ORIGIN")
  target_compile_features(ergon_${name} PUBLIC cxx_std_20)
  if(BUILD_SHARED_LIBS AND NOT M_STATIC AND NOT ERGON_SANITIZE)
    # Every symbol a module uses must come from the modules the table lets it use (or from its
    # LIBS): the link, not only the includes, refuses a module that calls upward. (Not under
    # the sanitizers: their runtime is resolved in the executable.)
    target_link_options(ergon_${name} PRIVATE LINKER:--no-undefined)
  endif()
  target_include_directories(ergon_${name}
    PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
           $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    PRIVATE ${PROJECT_SOURCE_DIR}/src $<TARGET_PROPERTY:cctz::cctz,INTERFACE_INCLUDE_DIRECTORIES>)
  set(uses "")
  foreach(dep IN LISTS ERGON_USES_${name})
    list(APPEND uses ergon_${dep})
  endforeach()
  target_link_libraries(ergon_${name} PUBLIC nlohmann_json::nlohmann_json Threads::Threads
                        ${M_PUBLIC_LIBS} PRIVATE ${uses} spdlog::spdlog ${M_LIBS})
  if(ERGON_WITH_AZURE)
    target_compile_definitions(ergon_${name} PRIVATE ERGON_HAVE_AZURE)
  endif()
  ergon_set_warnings(ergon_${name})
  add_dependencies(ergon_${name} ergon_layers)
  if(name STREQUAL "core")
    # The slow headers, parsed once per build instead of once per file (2-core machines).
    target_precompile_headers(ergon_core PRIVATE <nlohmann/json.hpp> <spdlog/spdlog.h> <string>
                              <vector> <map> <chrono>)
  else()
    target_precompile_headers(ergon_${name} REUSE_FROM ergon_core)
  endif()
endfunction()
