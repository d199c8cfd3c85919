# arm-linux-gnueabihf.cmake - cross build of the lnnedge VM for 32-bit ARM
# Linux, hard-float (Raspberry Pi 3 on a 32-bit OS: Cortex-A53 in AArch32,
# NEON + VFPv4), statically linked.
#
#   cmake -S vm -B build/rpi3 -DCMAKE_TOOLCHAIN_FILE=toolchains/cmake/arm-linux-gnueabihf.cmake
#   cmake --build build/rpi3 && ctest --test-dir build/rpi3
#
# Debian: apt-get install gcc-arm-linux-gnueabihf (and qemu-user to run the
# tests here). An ARMv7 core: -DLNN_CPU_FLAGS="-mcpu=cortex-a7 -mfpu=neon-vfpv4
# -mfloat-abi=hard".
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR arm)

set(LNN_CROSS arm-linux-gnueabihf)
set(CMAKE_C_COMPILER ${LNN_CROSS}-gcc)
set(LNN_CPU_FLAGS "-mcpu=cortex-a53 -mfpu=neon-fp-armv8 -mfloat-abi=hard"
    CACHE STRING "CPU flags for every file")
set(CMAKE_C_FLAGS_INIT "${LNN_CPU_FLAGS}")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")

# The flags make the compiler target NEON: LNN_ISA=auto (the default)
# already builds the neon kernels; -DLNN_ISA=neon makes that explicit.

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

# ctest under user-mode QEMU: qemu-arm has no cortex-a53 model, and the
# ARMv8 AArch32 instructions of -mcpu=cortex-a53 (vsel, vrint...) need an
# ARMv8 model: "max". With ARMv7 flags, cortex-a15 works as well.
find_program(LNN_QEMU qemu-arm)
if(LNN_QEMU)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${LNN_QEMU} -cpu max)
endif()
