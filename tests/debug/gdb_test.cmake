# Runs tools/gdb/gr.py in gdb on gr_gdb_target (gdb_target.cpp) stopped where every task but one is
# blocked, and checks that `gr tasks` lists each task with its state and wait, and that `gr bt`
# unwinds each suspended task to the nested functions it blocked in. Then does it again on a core
# file of the same moment (unless CORE is OFF: sanitizer builds map terabytes of shadow memory).
#
#   cmake -DGDB=<gdb> -DTARGET=<gr_gdb_target> -DGR_PY=<tools/gdb/gr.py> -DWORK_DIR=<dir>
#         -DCORE=ON|OFF -DDEBUG_INFO=ON|OFF -P gdb_test.cmake
#
# Prints GR_TEST_SKIPPED (ctest's SKIP_REGULAR_EXPRESSION) when there is no gdb, or when gr was built
# without debug info (gr.py reads gr's structures by their debug info).
cmake_minimum_required(VERSION 3.20)

if(NOT GDB OR NOT EXISTS "${GDB}")
  message("GR_TEST_SKIPPED: gdb is not installed (tools/deps installs it)")
  return()
endif()
if(NOT DEBUG_INFO)
  message("GR_TEST_SKIPPED: gr is built without debug info (-g), which tools/gdb/gr.py needs")
  return()
endif()

# LeakSanitizer cannot work under ptrace: in a sanitized build it would fail the program at exit.
if(DEFINED ENV{ASAN_OPTIONS} AND NOT "$ENV{ASAN_OPTIONS}" STREQUAL "")
  set(ENV{ASAN_OPTIONS} "$ENV{ASAN_OPTIONS}:detect_leaks=0")
else()
  set(ENV{ASAN_OPTIONS} "detect_leaks=0")
endif()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(core "${WORK_DIR}/gr_gdb_target.core")

# check(<output> <label> <regex>...): fails, showing the whole output, unless each regex matches.
function(check output label)
  foreach(re IN LISTS ARGN)
    if(NOT output MATCHES "${re}")
      message(FATAL_ERROR "${label}: no match for the regular expression\n  ${re}\nin gdb's output:\n${output}")
    endif()
  endforeach()
endfunction()

# The task lines of `gr tasks` (see gdb_target.cpp for who is who).
set(task_lines
  "gr: scheduler 1 on thread LWP [0-9]+ \\(gdb thread 1\\): 8 task\\(s\\)"
  "task #0 'main': blocked, waits to wait on wait_group 'workers' \\(count 7\\), switches [0-9]+\n"
  "task #1 'consumer': blocked, waits to recv on channel 'jobs', spawned at [^\n]*gdb_target.cpp:[0-9]+, age [0-9.]+ s, switches 1, stack [0-9.]+ KiB now, [0-9]+ KiB peak of [0-9]+ KiB"
  "task #2 'sleeper': blocked, waits to sleep \\(deadline in [0-9.]+ ms\\), spawned at [^\n]*gdb_target.cpp"
  "task #3: blocked, waits to select 'pick' over recv on channel '(left|right)', recv on channel '(left|right)', a nil channel \\(never ready\\), spawned at"
  "task #4 'joiner': blocked, waits to join task 'consumer' \\(#1\\), spawned at"
  "task #5 'prober': running, spawned at [^\n]*, stack [0-9.]+ KiB now"
  "task #6 'holder': blocked, waits to acquire semaphore 'gate', spawned at"
  "task #7 'waiter': blocked, waits to lock mutex 'registry' \\(held by task #6 'holder'\\), spawned at")

# A backtrace's frames, innermost first: "#0 ... in inner_recv" then "#1 ... in outer_wait".
set(bt_main "gr: task #0, suspended[^\n]*\n#0 [^\n]*\n(#[0-9][^\n]*\n)*#[0-9]+ [^\n]* main \\(\\) at [^\n]*gdb_target.cpp")
set(bt_consumer "gr: task #1, suspended[^\n]*\n(#[0-9][^\n]*\n)*#[0-9]+ [^\n]*inner_recv [^\n]*gdb_target.cpp:[0-9]+\n#[0-9]+ [^\n]*outer_wait [^\n]*gdb_target.cpp:[0-9]+\n#[0-9]+ [^\n]*operator\\(\\)")
set(bt_sleeper "gr: task #2, suspended[^\n]*\n(#[0-9][^\n]*\n)*#[0-9]+ [^\n]*nap_deeply \\(\\) at [^\n]*\n#[0-9]+ [^\n]*nap \\(\\) at ")
set(bt_select "gr: task #3, suspended[^\n]*\n(#[0-9][^\n]*\n)*#[0-9]+ [^\n]*pick_one [^\n]*gdb_target.cpp")
set(bt_joiner "gr: task #4, suspended[^\n]*\n(#[0-9][^\n]*\n)*#[0-9]+ [^\n]*gr::task::join")
set(bt_prober "gr: task #5 is the current task of thread LWP [0-9]+ \\(gdb thread 1\\):\n#0 [^\n]*gr_debug_all_blocked \\(\\) at")

set(gdb_cmds
  -ex "source ${GR_PY}"
  -ex "break gr_debug_all_blocked"
  -ex "run"
  -ex "gr tasks"
  -ex "gr bt 0" -ex "gr bt 1" -ex "gr bt 2" -ex "gr bt 3" -ex "gr bt 4" -ex "gr bt 5"
  -ex "gr bt 1 full" -ex "gr bt all"
  -ex "frame" -ex "bt 2")  # the program's own frames and selection are left as they were
if(CORE)
  list(APPEND gdb_cmds -ex "generate-core-file ${core}")
endif()
list(APPEND gdb_cmds -ex "continue")

execute_process(
  COMMAND "${GDB}" -batch -nx ${gdb_cmds} "${TARGET}"
  WORKING_DIRECTORY "${WORK_DIR}"
  OUTPUT_VARIABLE out ERROR_VARIABLE out
  RESULT_VARIABLE rc TIMEOUT 100)
file(WRITE "${WORK_DIR}/live.log" "${out}")
message("---- gdb on the live process ----\n${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gdb exited with ${rc}")
endif()
check("${out}" "live" ${task_lines} "${bt_main}" "${bt_consumer}" "${bt_sleeper}" "${bt_select}" "${bt_joiner}"
  "${bt_prober}"
  "inner_recv \\(ch=[^\n]*\n[^#]*v = "  # `gr bt 1 full`: locals
  "\ngr: task #2 'sleeper': blocked, waits to sleep[^\n]*\ngr: task #2, suspended[^\n]*\n(#[0-9][^\n]*\n)*#[0-9]+ [^\n]*nap_deeply"  # `gr bt all`
  "\n#0  gr_debug_all_blocked \\(\\) at [^\n]*\n[^\n]*\n#0  gr_debug_all_blocked \\(\\) at [^\n]*\n#1  [^\n]* in operator\\(\\) "  # `frame`, `bt 2`
  "gdb_target: done, result 142" "exited normally")
if(out MATCHES "Python Exception|Error occurred in Python|corrupt stack")
  message(FATAL_ERROR "gdb reported an error (see above)")
endif()

if(NOT CORE)
  return()
endif()
if(NOT EXISTS "${core}")
  message(FATAL_ERROR "gdb wrote no core file")
endif()
execute_process(
  COMMAND "${GDB}" -batch -nx -ex "source ${GR_PY}" -ex "gr tasks" -ex "gr bt 0" -ex "gr bt 1" -ex "gr bt 2"
          -ex "gr bt 3" -ex "gr bt 4" -ex "gr bt 5" "${TARGET}" "${core}"
  WORKING_DIRECTORY "${WORK_DIR}"
  OUTPUT_VARIABLE out ERROR_VARIABLE out
  RESULT_VARIABLE rc TIMEOUT 100)
file(WRITE "${WORK_DIR}/core.log" "${out}")
message("---- gdb on the core file ----\n${out}")
file(REMOVE "${core}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gdb exited with ${rc}")
endif()
check("${out}" "core" ${task_lines} "${bt_main}" "${bt_consumer}" "${bt_sleeper}" "${bt_select}" "${bt_joiner}"
  "${bt_prober}")
if(out MATCHES "Python Exception|Error occurred in Python|corrupt stack")
  message(FATAL_ERROR "gdb reported an error (see above)")
endif()
