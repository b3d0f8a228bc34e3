# Build options: warnings, sanitizers, fuzzing. Presets in CMakePresets.json pick them.
option(SEGBUS_WERROR "Treat warnings as errors (on in CI)" OFF)
option(SEGBUS_BUILD_TESTS "Build the googletest suite" ON)
option(SEGBUS_BUILD_BINDINGS "Build the Python and Ruby bindings (SWIG)" ON)
option(SEGBUS_FUZZ "Build libFuzzer targets (needs clang)" OFF)
set(SEGBUS_SANITIZE "" CACHE STRING "Sanitizers: empty, 'address,undefined' or 'thread'")

set(SEGBUS_C_WARNINGS
    -Wall -Wextra -Wshadow -Wpointer-arith -Wcast-align -Wwrite-strings -Wstrict-prototypes
    -Wmissing-prototypes -Wold-style-definition -Wformat=2 -Wundef -Wvla -Wnull-dereference
    -Wno-unused-parameter)
set(SEGBUS_CXX_WARNINGS -Wall -Wextra -Wshadow -Wformat=2 -Wno-unused-parameter
    -Wno-missing-field-initializers)
if(SEGBUS_WERROR)
  list(APPEND SEGBUS_C_WARNINGS -Werror)
  list(APPEND SEGBUS_CXX_WARNINGS -Werror)
endif()

# segbus_warnings(target): the project's warning set on a target of ours (not on generated code).
function(segbus_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:C>:${SEGBUS_C_WARNINGS}>
    $<$<COMPILE_LANGUAGE:CXX>:${SEGBUS_CXX_WARNINGS}>)
endfunction()

if(SEGBUS_SANITIZE)
  # gcc's flow analysis under sanitizers reports maybe-uninitialized inside libstdc++ headers
  # (std::function in <regex>); the optimised ci build keeps the warning as an error.
  if(CMAKE_C_COMPILER_ID STREQUAL "GNU")
    list(APPEND SEGBUS_C_WARNINGS -Wno-error=maybe-uninitialized)
    list(APPEND SEGBUS_CXX_WARNINGS -Wno-error=maybe-uninitialized)
  endif()
  add_compile_options(-fsanitize=${SEGBUS_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${SEGBUS_SANITIZE})
endif()
if(SEGBUS_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "SEGBUS_FUZZ needs clang (use the 'fuzz' preset)")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
