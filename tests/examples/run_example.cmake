# cmake -DEXE=<program> [-DARGS="<arguments>"] -DEXPECTED=<file> -P run_example.cmake
# cmake -DEXE=<program> [-DARGS="<arguments>"] -DEXPECT_FAILURE=ON -DEXPECTED_STDERR=<text> -P run_example.cmake
# Runs an example, with ARGS if given (split as a shell would). By default it must exit with 0,
# print exactly EXPECTED and nothing on stderr; with EXPECT_FAILURE it must exit with a non-zero
# status and print EXPECTED_STDERR somewhere on stderr (a bad command line).
if(NOT EXE OR (NOT EXPECTED AND NOT EXPECT_FAILURE))
  message(FATAL_ERROR "usage: cmake -DEXE=<program> [-DARGS=...] (-DEXPECTED=<file> | -DEXPECT_FAILURE=ON "
                      "-DEXPECTED_STDERR=<text>) -P run_example.cmake")
endif()
separate_arguments(args UNIX_COMMAND "${ARGS}")
execute_process(COMMAND "${EXE}" ${args} OUTPUT_VARIABLE actual ERROR_VARIABLE errors RESULT_VARIABLE rc)
if(EXPECT_FAILURE)
  if(rc STREQUAL "0")
    message(FATAL_ERROR "${EXE} ${ARGS}: exited with 0, expected a failure\n--- stdout\n${actual}--- stderr\n${errors}")
  endif()
  string(FIND "${errors}" "${EXPECTED_STDERR}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${EXE} ${ARGS}: stderr lacks '${EXPECTED_STDERR}'\n--- stderr\n${errors}")
  endif()
  return()
endif()
if(NOT rc STREQUAL "0")
  message(FATAL_ERROR "${EXE} ${ARGS}: failed (${rc})\n--- stdout\n${actual}--- stderr\n${errors}")
endif()
file(READ "${EXPECTED}" expected)
if(NOT actual STREQUAL expected)
  message(FATAL_ERROR "${EXE} ${ARGS}: stdout differs from ${EXPECTED}\n--- expected\n${expected}--- actual\n${actual}")
endif()
if(NOT errors STREQUAL "")
  message(FATAL_ERROR "${EXE} ${ARGS}: wrote on stderr:\n${errors}")
endif()
