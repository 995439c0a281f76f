# gr_set_warnings(<target>): the project's warning set, applied privately so users' builds never
# inherit it. GR_WERROR (on in CI) turns warnings into errors.
function(gr_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
    -Wold-style-cast -Wcast-align -Woverloaded-virtual -Wnull-dereference)
  # GCC 12 at -O2/-O3 reports -Wrestrict inside libstdc++ for plain `"text" + std::string`
  # (GCC PR 105329, fixed in 13): a false positive that would fail the release build under -Werror.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    target_compile_options(${target} PRIVATE -Wno-restrict)
  endif()
  if(GR_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# gr_add_library(<layer> SOURCES... DEPS...): one library per layer, with its own include root so
# a lower layer cannot include a higher one.
function(gr_add_library layer)
  cmake_parse_arguments(ARG "" "" "SOURCES;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(gr_${layer} ${ARG_SOURCES})
  add_library(gr::${layer} ALIAS gr_${layer})
  set_target_properties(gr_${layer} PROPERTIES EXPORT_NAME ${layer} POSITION_INDEPENDENT_CODE ON)
  target_include_directories(gr_${layer}
    PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include> $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_compile_features(gr_${layer} PUBLIC cxx_std_20)
  target_link_libraries(gr_${layer} PUBLIC ${ARG_PUBLIC_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  gr_set_warnings(gr_${layer})
endfunction()
