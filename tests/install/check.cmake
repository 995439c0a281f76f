# cmake -P check.cmake: the body of the ctest test "install/find_package works" (see register.cmake).
#   1. cmake --install GR_BUILD_DIR --prefix GR_WORK_DIR/prefix
#   2. configure GR_SOURCE_DIR (tests/install) with CMAKE_PREFIX_PATH=that prefix, the same compiler,
#      flags and build type as gr's build (so a sanitizer build links)
#   3. build it, run it, and expect "gr install ok"
foreach(var GR_BUILD_DIR GR_SOURCE_DIR GR_WORK_DIR GR_GENERATOR GR_CXX_COMPILER)
  if(NOT ${var})
    message(FATAL_ERROR "check.cmake: ${var} is not set")
  endif()
endforeach()

set(prefix ${GR_WORK_DIR}/prefix)
set(build ${GR_WORK_DIR}/build)
file(REMOVE_RECURSE ${GR_WORK_DIR})

# run(<what> <command...>): runs a command, shows its output, fails the test if it fails.
function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  message("${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "install test: ${what} failed (${rc}): ${ARGN}")
  endif()
  set(run_output "${out}" PARENT_SCOPE)
endfunction()

set(config_args)
if(GR_CONFIG)
  set(config_args --config ${GR_CONFIG})
endif()
run("installing gr" ${CMAKE_COMMAND} --install ${GR_BUILD_DIR} --prefix ${prefix} ${config_args})

set(configure_args -S ${GR_SOURCE_DIR} -B ${build} -G ${GR_GENERATOR}
  -DCMAKE_PREFIX_PATH=${prefix}
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  -DCMAKE_CXX_COMPILER=${GR_CXX_COMPILER}
  "-DCMAKE_CXX_FLAGS=${GR_CXX_FLAGS}")
if(GR_MAKE_PROGRAM)
  list(APPEND configure_args -DCMAKE_MAKE_PROGRAM=${GR_MAKE_PROGRAM})
endif()
if(GR_CONFIG)
  list(APPEND configure_args -DCMAKE_BUILD_TYPE=${GR_CONFIG})
elseif(GR_BUILD_TYPE)
  list(APPEND configure_args -DCMAKE_BUILD_TYPE=${GR_BUILD_TYPE})
endif()
run("configuring tests/install" ${CMAKE_COMMAND} ${configure_args})

# It must have found the installed package, not some other gr.
file(STRINGS ${build}/CMakeCache.txt gr_dir REGEX "^gr_DIR:")
string(REGEX REPLACE "^gr_DIR:[A-Z]+=" "" gr_dir "${gr_dir}")
file(REAL_PATH "${gr_dir}" gr_dir)
file(REAL_PATH "${prefix}" real_prefix)
string(FIND "${gr_dir}" "${real_prefix}/" at)
if(NOT at EQUAL 0)
  message(FATAL_ERROR "install test: find_package(gr) found ${gr_dir}, not the package installed in ${prefix}")
endif()

run("building tests/install" ${CMAKE_COMMAND} --build ${build} ${config_args})

find_program(exe gr_install_test PATHS ${build} ${build}/${GR_CONFIG} NO_DEFAULT_PATH)
if(NOT exe)
  message(FATAL_ERROR "install test: no gr_install_test in ${build}")
endif()
run("running gr_install_test" ${exe})
if(NOT run_output MATCHES "gr install ok")
  message(FATAL_ERROR "install test: gr_install_test did not print \"gr install ok\"")
endif()
message("install test: ok (gr found in ${gr_dir})")
