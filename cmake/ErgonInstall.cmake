# Install rules, a CMake package and a pkg-config file, so that after cmake --install
#   find_package(ergon CONFIG REQUIRED [COMPONENTS dashboard])
# gives ergon::ergon (the library: every module of src/ up to the client API) and, with the
# component, ergon::dashboard; and `pkg-config --cflags --libs ergon` gives the same library.
# The modules are installed and exported with the umbrella, so that a consumer's link line
# gets each of them once; static or shared as built (BUILD_SHARED_LIBS).
include(CMakePackageConfigHelpers)
set(ergon_install_targets ergon ${ERGON_LIBRARY_MODULES})
install(TARGETS ${ergon_install_targets} EXPORT ergonTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(EXPORT ergonTargets NAMESPACE ergon:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ergon)
if(TARGET ergon_dashboard)
  # Its own export set: a consumer that does not ask for the dashboard needs none of its
  # dependencies (cpp-httplib, prometheus-cpp, OpenSSL).
  install(TARGETS ergon_dashboard ergon_ops EXPORT ergonDashboardTargets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(EXPORT ergonDashboardTargets NAMESPACE ergon::
          DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ergon)
  install(DIRECTORY include/ergon DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
else()
  install(DIRECTORY include/ergon DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
          PATTERN "dashboard.h" EXCLUDE PATTERN "metrics.h" EXCLUDE)
endif()
configure_package_config_file(cmake/ergonConfig.cmake.in
  ${PROJECT_BINARY_DIR}/ergonConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ergon)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/ergonConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/ergonConfig.cmake ${PROJECT_BINARY_DIR}/ergonConfigVersion.cmake
              cmake/ergonCctz.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ergon)

# ergon.pc. Relocatable: its prefix is found from its own place (${pcfiledir}). A static
# Ergon's dependencies are needed by every link, so they go in Requires/Libs and a plain
# `pkg-config --libs ergon` links; a shared Ergon's private ones go in the .private fields.
set(ergon_pc_requires "nlohmann_json >= 3.10")
set(ergon_pc_requires_private "sqlite3 >= 3.35, libpq, spdlog")
if(ERGON_WITH_AZURE)
  string(APPEND ergon_pc_requires_private ", libcurl, libcrypto")
endif()
set(ergon_pc_libs "")
foreach(module IN LISTS ERGON_LIBRARY_MODULES)
  string(APPEND ergon_pc_libs " -l${module}")
endforeach()
# cctz has no .pc file: its library by name, with its directory when the linker would not
# search there by itself.
set(ergon_pc_libs_private "-lcctz")
get_target_property(ergon_cctz_imported cctz::cctz IMPORTED)
if(ergon_cctz_imported)
  get_target_property(ergon_cctz_location cctz::cctz LOCATION)
  get_filename_component(ergon_cctz_dir "${ergon_cctz_location}" DIRECTORY)
  if(NOT ergon_cctz_dir IN_LIST CMAKE_CXX_IMPLICIT_LINK_DIRECTORIES)
    set(ergon_pc_libs_private "-L${ergon_cctz_dir} -lcctz")
  endif()
endif()
if(BUILD_SHARED_LIBS)
  set(ergon_pc_private "Requires.private: ${ergon_pc_requires_private}
Libs.private: ${ergon_pc_libs_private}
")
else()
  string(APPEND ergon_pc_requires ", ${ergon_pc_requires_private}")
  string(APPEND ergon_pc_libs " ${ergon_pc_libs_private}")
  set(ergon_pc_private "")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(ergon_pc_prefix "${CMAKE_INSTALL_PREFIX}")
  set(ergon_pc_libdir "${CMAKE_INSTALL_FULL_LIBDIR}")
  set(ergon_pc_includedir "${CMAKE_INSTALL_FULL_INCLUDEDIR}")
else()
  # ${pcfiledir} is LIBDIR/pkgconfig: one ".." for it and one for each part of LIBDIR.
  string(REGEX REPLACE "[^/]+" ".." ergon_pc_up "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
  set(ergon_pc_prefix "\${pcfiledir}/${ergon_pc_up}")
  set(ergon_pc_libdir "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
  set(ergon_pc_includedir "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(cmake/ergon.pc.in ${PROJECT_BINARY_DIR}/ergon.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/ergon.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
