# quiver_library(NAME SOURCES ... DEPS ...): one component's library target.
# quiver_test(NAME SOURCES ... DEPS ...): one GoogleTest program, registered with ctest.

function(quiver_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC "${PROJECT_SOURCE_DIR}/cpp")
  target_compile_options(${name} PRIVATE ${QUIVER_WARNING_FLAGS})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
  set_target_properties(${name} PROPERTIES POSITION_INDEPENDENT_CODE ON)
endfunction()

function(quiver_test name)
  if(NOT QUIVER_BUILD_TESTS)
    return()
  endif()
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_compile_options(${name} PRIVATE ${QUIVER_WARNING_FLAGS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} quiver_testing GTest::gtest GTest::gtest_main)
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60
    PROPERTIES ENVIRONMENT "QUIVER_PYTHON=${QUIVER_PYTHON};QUIVER_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endfunction()
