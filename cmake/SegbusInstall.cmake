# Install rules: the library, its one public header, a pkg-config file and a CMake package.
include(CMakePackageConfigHelpers)
install(TARGETS segbus segbus_static EXPORT segbusTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  PUBLIC_HEADER DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/segbus)
install(FILES ${PROJECT_SOURCE_DIR}/include/segbus/segbus.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/segbus)
install(EXPORT segbusTargets NAMESPACE segbus:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/segbus)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/segbusConfig.cmake.in
  ${PROJECT_BINARY_DIR}/segbusConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/segbus)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/segbusConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/segbusConfig.cmake ${PROJECT_BINARY_DIR}/segbusConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/segbus)
configure_file(${PROJECT_SOURCE_DIR}/cmake/segbus.pc.in ${PROJECT_BINARY_DIR}/segbus.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/segbus.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
