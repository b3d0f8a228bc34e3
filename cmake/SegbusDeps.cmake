# Every outside library, found once here. Modules link the two interface targets:
#   segbus_client_deps  what libsegbus itself needs (kept small: applications link it)
#   segbus_daemon_deps  what the daemon side needs on top
# and tests/benchmarks may link the individual PkgConfig:: targets.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

pkg_check_modules(URING REQUIRED IMPORTED_TARGET liburing)
pkg_check_modules(MSGPACK REQUIRED IMPORTED_TARGET msgpack)
pkg_check_modules(XXHASH REQUIRED IMPORTED_TARGET libxxhash)
pkg_check_modules(SIMDJSON REQUIRED IMPORTED_TARGET simdjson)
pkg_check_modules(YAML REQUIRED IMPORTED_TARGET yaml-0.1)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
pkg_check_modules(OPENSSL REQUIRED IMPORTED_TARGET openssl)
pkg_check_modules(ZLIB REQUIRED IMPORTED_TARGET zlib)
pkg_check_modules(SQLITE3 REQUIRED IMPORTED_TARGET sqlite3)
pkg_check_modules(LIBPQ REQUIRED IMPORTED_TARGET libpq)
pkg_check_modules(RDKAFKA REQUIRED IMPORTED_TARGET rdkafka)

# http-parser ships no pkg-config file on Debian 12.
find_path(HTTP_PARSER_INCLUDE_DIR http_parser.h REQUIRED)
find_library(HTTP_PARSER_LIBRARY http_parser REQUIRED)
add_library(segbus_http_parser INTERFACE)
target_include_directories(segbus_http_parser INTERFACE ${HTTP_PARSER_INCLUDE_DIR})
target_link_libraries(segbus_http_parser INTERFACE ${HTTP_PARSER_LIBRARY})

add_library(segbus_client_deps INTERFACE)
target_link_libraries(segbus_client_deps INTERFACE PkgConfig::MSGPACK PkgConfig::XXHASH
  PkgConfig::SIMDJSON Threads::Threads)

add_library(segbus_daemon_deps INTERFACE)
target_link_libraries(segbus_daemon_deps INTERFACE PkgConfig::URING PkgConfig::YAML
  PkgConfig::PCRE2 PkgConfig::OPENSSL PkgConfig::ZLIB PkgConfig::SQLITE3 PkgConfig::LIBPQ
  PkgConfig::RDKAFKA segbus_http_parser)

# Installed targets must not reference build-only interface libraries by name.
install(TARGETS segbus_client_deps EXPORT segbusTargets)
