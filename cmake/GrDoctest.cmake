include(${doctest_DIR}/doctest.cmake)

# gr_add_test_binary(<layer> SOURCES... [LIBS...] [TIMEOUT s]): the doctest binary gr_<layer>_tests,
# linked to gr::<layer> only (plus LIBS), each test case registered with ctest as "<layer>/<name>"
# with a timeout, so a hang fails instead of stalling CI.
function(gr_add_test_binary layer)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;LIBS" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  add_executable(gr_${layer}_tests ${ARG_SOURCES})
  target_link_libraries(gr_${layer}_tests PRIVATE gr::${layer} gr_test_main ${ARG_LIBS})
  gr_set_warnings(gr_${layer}_tests)
  doctest_discover_tests(gr_${layer}_tests TEST_PREFIX "${layer}/" PROPERTIES TIMEOUT ${ARG_TIMEOUT})
endfunction()
