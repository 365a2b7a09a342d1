# Finds every library ketch builds against. Each comes from a Debian 12 package; when one
# is missing, configuration stops and names the package to install (scripts/deps installs
# them all).
find_package(PkgConfig)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "pkg-config not found: install the Debian package pkg-config")
endif()

# ketch_require_pc(<prefix> <pkg-config module> <debian package>)
function(ketch_require_pc prefix module debpkg)
  pkg_check_modules(${prefix} QUIET IMPORTED_TARGET GLOBAL ${module})
  if(NOT ${prefix}_FOUND)
    message(FATAL_ERROR "${module} not found: install the Debian package ${debpkg} "
                        "(apt-get install ${debpkg}, or run scripts/test which installs all)")
  endif()
endfunction()

ketch_require_pc(UV libuv libuv1-dev)
ketch_require_pc(PROTOBUFC libprotobuf-c libprotobuf-c-dev)
ketch_require_pc(OPENSSL openssl libssl-dev)
ketch_require_pc(LMDB lmdb liblmdb-dev)
ketch_require_pc(CURL libcurl libcurl4-openssl-dev)
ketch_require_pc(CJSON libcjson libcjson-dev)
ketch_require_pc(CHECK check check)
ketch_require_pc(SYSTEMD libsystemd libsystemd-dev)

# http-parser ships no pkg-config file: look for the header and library directly.
find_path(HTTP_PARSER_INCLUDE_DIR http_parser.h)
find_library(HTTP_PARSER_LIBRARY http_parser)
if(NOT HTTP_PARSER_INCLUDE_DIR OR NOT HTTP_PARSER_LIBRARY)
  message(FATAL_ERROR "http_parser not found: install the Debian package libhttp-parser-dev")
endif()
add_library(ketch_http_parser INTERFACE)
target_include_directories(ketch_http_parser INTERFACE ${HTTP_PARSER_INCLUDE_DIR})
target_link_libraries(ketch_http_parser INTERFACE ${HTTP_PARSER_LIBRARY})

find_program(PROTOC_C NAMES protoc-c)
if(NOT PROTOC_C)
  message(FATAL_ERROR "protoc-c not found: install the Debian package protobuf-c-compiler")
endif()

find_package(Threads REQUIRED)
