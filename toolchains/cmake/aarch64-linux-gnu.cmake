# aarch64-linux-gnu.cmake - cross build of the lnnedge VM for 64-bit ARM
# Linux (Raspberry Pi 4: Cortex-A72), statically linked.
#
#   cmake -S vm -B build/rpi4 -DCMAKE_TOOLCHAIN_FILE=toolchains/cmake/aarch64-linux-gnu.cmake
#   cmake --build build/rpi4 && ctest --test-dir build/rpi4
#
# Debian: apt-get install gcc-aarch64-linux-gnu (and qemu-user to run the
# tests here). Another core: -DLNN_CPU_FLAGS="-mcpu=cortex-a53".
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(LNN_CROSS aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${LNN_CROSS}-gcc)
set(LNN_CPU_FLAGS "-mcpu=cortex-a72" CACHE STRING "CPU flags for every file")
set(CMAKE_C_FLAGS_INIT "${LNN_CPU_FLAGS}")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")

# NEON is part of ARMv8-A: LNN_ISA=auto (the default) already builds it;
# -DLNN_ISA=neon makes that explicit.

# Libraries and headers of the target only, programs of the host.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# compile checks without linking a test program for the target
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

# ctest runs the static test binaries under user-mode QEMU when it is here.
find_program(LNN_QEMU qemu-aarch64)
if(LNN_QEMU)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${LNN_QEMU} -cpu cortex-a72)
endif()
