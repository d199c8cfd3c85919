# Forwards to the toolchain file of the repository, toolchains/cmake/arm-none-eabi.cmake:
# CMake looks for a relative CMAKE_TOOLCHAIN_FILE in the build tree and then
# in the source tree (vm/), so this makes
#   cmake -S vm -B b -DCMAKE_TOOLCHAIN_FILE=toolchains/cmake/arm-none-eabi.cmake
# work from the repository root.
include(${CMAKE_CURRENT_LIST_DIR}/../../../toolchains/cmake/arm-none-eabi.cmake)
