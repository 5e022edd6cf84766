# An overlay port that builds Ergon from this checkout (not from a download):
#   vcpkg install ergon --overlay-ports=<checkout>/ports            (classic mode)
#   vcpkg install --overlay-ports=<checkout>/ports                  (manifest mode)
# Static or shared as the triplet says (BUILD_SHARED_LIBS); features: dashboard, azure.
# docs/packaging.md says what has been tried with it.
set(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../..")

vcpkg_check_features(OUT_FEATURE_OPTIONS FEATURE_OPTIONS
  FEATURES
    dashboard ERGON_WITH_DASHBOARD
    azure ERGON_WITH_AZURE)

# Ergon's build finds libpq, SQLite and cpp-httplib with pkg-config (the pkgconf port).
vcpkg_find_acquire_program(PKGCONFIG)

vcpkg_cmake_configure(
  SOURCE_PATH "${SOURCE_PATH}"
  OPTIONS
    ${FEATURE_OPTIONS}
    -DERGON_BUILD_TESTS=OFF
    -DERGON_BUILD_APPS=OFF
    "-DPKG_CONFIG_EXECUTABLE=${PKGCONFIG}")
vcpkg_cmake_install()
vcpkg_cmake_config_fixup(PACKAGE_NAME ergon CONFIG_PATH lib/cmake/ergon)
vcpkg_fixup_pkgconfig()

file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/debug/include")
# No license has been published for Ergon yet; the copyright file says so.
file(WRITE "${CURRENT_PACKAGES_DIR}/share/${PORT}/copyright"
     "Ergon: no license has been published yet.\n")
