# Install rules and a package config, so that after cmake --install
#   find_package(ergon CONFIG REQUIRED [COMPONENTS dashboard])
# gives ergon::ergon (the library: every module of src/ up to the client API) and, with the
# component, ergon::dashboard. The modules are static libraries, installed and exported with
# the umbrella so that a consumer's link line gets each of them once.
include(CMakePackageConfigHelpers)
set(ergon_install_targets ergon ${ERGON_LIBRARY_MODULES})
install(TARGETS ${ergon_install_targets} EXPORT ergonTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(EXPORT ergonTargets NAMESPACE ergon:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ergon)
if(TARGET ergon_dashboard)
  # Its own export set: a consumer that does not ask for the dashboard needs none of its
  # dependencies (cpp-httplib, prometheus-cpp, OpenSSL).
  install(TARGETS ergon_dashboard ergon_ops EXPORT ergonDashboardTargets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
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
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ergon)
