# Included (optionally) by tests/CMakeLists.txt: registers the ctest tests
#   "install/find_package works": installs this build into a scratch prefix, then configures,
#     builds and runs tests/install (a user's project doing find_package(gr)) against that prefix
#     (check.cmake does the work);
#   "install/add_subdirectory leaves the project's build type alone": configures
#     tests/install/subdir, a project that adds gr's source tree (check_subdir.cmake).
add_test(NAME "install/add_subdirectory leaves the project's build type alone"
  COMMAND ${CMAKE_COMMAND}
    "-DGR_ROOT=${gr_SOURCE_DIR}"
    "-DGR_SOURCE_DIR=${CMAKE_CURRENT_LIST_DIR}/subdir"
    "-DGR_WORK_DIR=${gr_BINARY_DIR}/subdir-test"
    "-DGR_GENERATOR=${CMAKE_GENERATOR}"
    "-DGR_MAKE_PROGRAM=${CMAKE_MAKE_PROGRAM}"
    "-DGR_CXX_COMPILER=${CMAKE_CXX_COMPILER}"
    -P ${CMAKE_CURRENT_LIST_DIR}/check_subdir.cmake)
set_tests_properties("install/add_subdirectory leaves the project's build type alone" PROPERTIES TIMEOUT 300)

if(NOT GR_INSTALL)
  return()
endif()

add_test(NAME "install/find_package works"
  COMMAND ${CMAKE_COMMAND}
    "-DGR_BUILD_DIR=${gr_BINARY_DIR}"
    "-DGR_CONFIG=$<CONFIG>"
    "-DGR_SOURCE_DIR=${CMAKE_CURRENT_LIST_DIR}"
    "-DGR_WORK_DIR=${gr_BINARY_DIR}/install-test"
    "-DGR_GENERATOR=${CMAKE_GENERATOR}"
    "-DGR_MAKE_PROGRAM=${CMAKE_MAKE_PROGRAM}"
    "-DGR_CXX_COMPILER=${CMAKE_CXX_COMPILER}"
    "-DGR_CXX_FLAGS=${CMAKE_CXX_FLAGS}"
    "-DGR_BUILD_TYPE=${CMAKE_BUILD_TYPE}"
    -P ${CMAKE_CURRENT_LIST_DIR}/check.cmake)
# Configuring a project and building it takes a while on a loaded 2-core machine.
set_tests_properties("install/find_package works" PROPERTIES TIMEOUT 300)
