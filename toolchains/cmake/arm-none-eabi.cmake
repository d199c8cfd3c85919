# arm-none-eabi.cmake - bare-metal cross build of the lnnedge VM for a
# Cortex-M4F (hard-float, FPv4-SP; the cortex-m4 target), library only: no OS,
# so vm/CMakeLists.txt builds neither the runner nor the kernel test.
#
#   cmake -S vm -B build/m4 -DCMAKE_TOOLCHAIN_FILE=toolchains/cmake/arm-none-eabi.cmake
#   cmake --build build/m4 && cmake --install build/m4 --prefix /opt/lnnvm-m4
#
# An app then links lnnvm::lnnvm (find_package(lnnvm CONFIG), the same file as
# its toolchain) with its own startup code and linker script: examples/cortex-m.
# Debian: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi. Another
# core: -DLNN_CPU_FLAGS="-mcpu=cortex-m7 -mthumb -mfpu=fpv5-d16 -mfloat-abi=hard".
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)

set(LNN_CROSS arm-none-eabi)
set(CMAKE_C_COMPILER ${LNN_CROSS}-gcc)
set(LNN_CPU_FLAGS "-mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard"
    CACHE STRING "CPU flags for every file")
set(CMAKE_C_FLAGS_INIT "${LNN_CPU_FLAGS}")

# Programs of the host; libraries, headers and packages of the target (the
# prefixes in CMAKE_PREFIX_PATH are searched as given while CMAKE_FIND_ROOT_PATH
# and CMAKE_SYSROOT are empty).
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# no OS to link a test program for: compile checks build a static library
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
