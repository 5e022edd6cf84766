# Install rules and a package config so that find_package(ergon) works after cmake --install.
include(CMakePackageConfigHelpers)
install(TARGETS ergon EXPORT ergonTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
# dashboard.h and metrics.h belong to ergon_dashboard, which is not installed (yet): leave
# them out rather than install headers without their library.
install(DIRECTORY include/ergon DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        PATTERN "dashboard.h" EXCLUDE PATTERN "metrics.h" EXCLUDE)
install(EXPORT ergonTargets NAMESPACE ergon:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ergon)
configure_package_config_file(cmake/ergonConfig.cmake.in
  ${PROJECT_BINARY_DIR}/ergonConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ergon)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/ergonConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/ergonConfig.cmake ${PROJECT_BINARY_DIR}/ergonConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ergon)
