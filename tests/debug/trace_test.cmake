# Runs a program that records a Chrome trace, then checks the file with check_trace.py and renders
# it with tools/trace2html (both outputs checked too).
#
#   cmake -DPROGRAM=<exe> -DMODE=arg|env -DTRACE=<out.json> -DPYTHON=<python3> -DCHECK=<check_trace.py>
#         -DTRACE2HTML=<tools/trace2html> [-DSTRICT=ON] [-DCHECK_ARGS=<;-list>] -P trace_test.cmake
#
# MODE arg passes the file name as the program's argument (gr::start_chrome_trace); MODE env sets
# GR_TRACE instead, the way any gr program is traced. Prints GR_TEST_SKIPPED without python3.
cmake_minimum_required(VERSION 3.20)

if(NOT PYTHON)
  message("GR_TEST_SKIPPED: python3 is not installed (tools/deps installs it)")
  return()
endif()
file(REMOVE "${TRACE}")
if(MODE STREQUAL "env")
  set(cmd "${CMAKE_COMMAND}" -E env "GR_TRACE=${TRACE}" "${PROGRAM}")
else()
  set(cmd "${PROGRAM}" "${TRACE}")
endif()
execute_process(COMMAND ${cmd} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out TIMEOUT 60)
message("${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${PROGRAM} exited with ${rc}")
endif()
if(NOT EXISTS "${TRACE}")
  message(FATAL_ERROR "${PROGRAM} wrote no trace to ${TRACE}")
endif()

set(args "${TRACE}" --trace2html "${TRACE2HTML}" ${CHECK_ARGS})
if(STRICT)
  list(APPEND args --strict)
endif()
execute_process(COMMAND "${PYTHON}" "${CHECK}" ${args} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
message("${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "check_trace.py failed")
endif()
