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

# quiver_transport_library(NAME SOURCES ... DEPS ...): the transport in
# cpp/quiver/transport/NAME as library quiver_transport_NAME, plus the target
# engines link to have it registered, quiver::transport::NAME: it links the
# library whole, since nothing references the object that registers it.
function(quiver_transport_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  quiver_library(quiver_transport_${name} SOURCES ${ARG_SOURCES} DEPS quiver_transport ${ARG_DEPS})
  add_library(quiver_transport_${name}_registered INTERFACE)
  target_link_libraries(quiver_transport_${name}_registered INTERFACE
    "$<LINK_LIBRARY:WHOLE_ARCHIVE,quiver_transport_${name}>")
  add_library(quiver::transport::${name} ALIAS quiver_transport_${name}_registered)
endfunction()
