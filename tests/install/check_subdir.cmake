# cmake -P check_subdir.cmake: the body of the ctest test "install/add_subdirectory leaves the
# project's build type alone" (see register.cmake). Configures tests/install/subdir, which adds
# GR_ROOT with add_subdirectory, with no build type, and checks that gr left the project's
# CMAKE_BUILD_TYPE empty (it once forced RelWithDebInfo into the user's cache) and built none of
# its tests, benchmarks or examples.
foreach(var GR_ROOT GR_SOURCE_DIR GR_WORK_DIR GR_GENERATOR GR_CXX_COMPILER)
  if(NOT ${var})
    message(FATAL_ERROR "check_subdir.cmake: ${var} is not set")
  endif()
endforeach()
file(REMOVE_RECURSE ${GR_WORK_DIR})
set(args -S ${GR_SOURCE_DIR} -B ${GR_WORK_DIR} -G ${GR_GENERATOR} -DGR_ROOT=${GR_ROOT}
  -DCMAKE_CXX_COMPILER=${GR_CXX_COMPILER} -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
if(GR_MAKE_PROGRAM)
  list(APPEND args -DCMAKE_MAKE_PROGRAM=${GR_MAKE_PROGRAM})
endif()
execute_process(COMMAND ${CMAKE_COMMAND} ${args} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
message("${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "subdir test: configuring tests/install/subdir failed (${rc})")
endif()
file(STRINGS ${GR_WORK_DIR}/CMakeCache.txt build_type REGEX "^CMAKE_BUILD_TYPE:")
if(NOT build_type STREQUAL "" AND NOT build_type MATCHES "^CMAKE_BUILD_TYPE:[A-Z]+=$")
  message(FATAL_ERROR "subdir test: gr set the project's build type: ${build_type}")
endif()
file(STRINGS ${GR_WORK_DIR}/CMakeCache.txt extras REGEX "^GR_BUILD_(TESTS|BENCHMARKS|EXAMPLES):BOOL=ON")
if(extras)
  message(FATAL_ERROR "subdir test: gr builds its extras in a project that adds it: ${extras}")
endif()
message("subdir test: ok")
