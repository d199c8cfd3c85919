/*
 * startup_cortexm.c - the core's vector table and the reset handler of any
 * Cortex-M (ARMv6-M: M0; ARMv7E-M: M4F; Armv8.1-M: M55). The board's interrupt vectors
 * follow in section .vectors.irq (board_<name>.c; cortex_m.ld puts them
 * right after these 16).
 *
 * Reset_Handler enables the FPU (CPACR, coprocessors 10 and 11, full access;
 * on an Armv8.1-M core such as the Cortex-M55 the same bits enable MVE) on a
 * core built for one, before anything that could touch a floating-point
 * register, turns on the level 1 caches of a core that has them (Cortex-M7,
 * M55, M85), copies .data from its load address, zeroes .bss and calls
 * main(). Faults record what happened in a .noinit word block (reported by
 * the next boot's INFO) and reset the chip through AIRCR.SYSRESETREQ: a
 * device that faulted comes back with a new session, which the host notices.
 */
#include <stdint.h>

#include "board.h"
#include "cortexm.h"

extern uint32_t __data_start, __data_end, __data_load, __bss_start, __bss_end;
extern uint32_t __stack_top;

int main(void);
__attribute__((noreturn)) void Reset_Handler(void);
void reset_c(void);
void fault_c(const uint32_t *frame);
void Fault_Handler(void);

/* Handlers a board may define; the default ones are weak. */
void NMI_Handler(void) __attribute__((weak, alias("Default_Handler")));
void SVC_Handler(void) __attribute__((weak, alias("Default_Handler")));
void PendSV_Handler(void) __attribute__((weak, alias("Default_Handler")));
void SysTick_Handler(void) __attribute__((weak, alias("Default_Handler")));

/* The initial stack pointer is word 0; cast through uintptr_t to fit the
 * table. Entries 4-6 and 12 are reserved on ARMv6-M (no MemManage, BusFault,
 * UsageFault, DebugMon): a fault handler there is never called. */
__attribute__((section(".vectors"), used)) const lnn_vector lnn_vectors[16] = {
    [0] = (lnn_vector)(uintptr_t)&__stack_top,
    [1] = Reset_Handler,
    [2] = NMI_Handler,
    [3] = Fault_Handler, /* HardFault */
    [4] = Fault_Handler, /* MemManage */
    [5] = Fault_Handler, /* BusFault */
    [6] = Fault_Handler, /* UsageFault */
    [11] = SVC_Handler,
    [12] = Default_Handler, /* DebugMon */
    [14] = PendSV_Handler,
    [15] = SysTick_Handler,
};

#if defined(__ARM_FP)
/* Nothing before the CPACR write may use a floating-point register, so the
 * first instructions are written out: CPACR |= CP10, CP11 full access. */
__attribute__((naked, noreturn)) void Reset_Handler(void)
{
    __asm volatile(
        "ldr r0, =0xE000ED88\n"
        "ldr r1, [r0]\n"
        "orr r1, r1, #(0xF << 20)\n"
        "str r1, [r0]\n"
        "dsb\n"
        "isb\n"
        "b reset_c\n"
        ".ltorg\n"); /* its constant here: in one LTO unit the next literal pool may be out of reach */
}
#else
__attribute__((noreturn)) void Reset_Handler(void) __attribute__((alias("reset_c")));
#endif

#ifdef LNN_CORE_CACHES /* the Makefile sets it for a core with caches (-mcpu=cortex-m7, m55, m85) */
#define SCB_CCR 0xE000ED14u
#define SCB_CCSIDR 0xE000ED80u
#define SCB_CSSELR 0xE000ED84u
#define SCB_ICIALLU 0xE000EF50u
#define SCB_DCISW 0xE000EF60u
#define CCR_DC (1u << 16)
#define CCR_IC (1u << 17)

/* The Cortex-M7, M55 and M85 come out of reset with their level 1 caches
 * off and holding undefined contents, so a real part would fetch every
 * instruction and datum from flash or SRAM, several times slower. Invalidate
 * both caches and turn them on (the architecture's sequence: ICIALLU, the
 * data cache by set and way from its CCSIDR geometry, then CCR.IC and DC),
 * before .data is copied. The firmware does no DMA, so nothing needs
 * cleaning later. A build for a core without caches leaves this out (the
 * stm32f405 firmware's 20 KB budget has no room for dead code). QEMU models
 * no cache: the writes are accepted and change nothing. */
static void enable_caches(void)
{
    __asm volatile("dsb\n\tisb" ::: "memory");
    REG(SCB_ICIALLU) = 0u;
    REG(SCB_CSSELR) = 0u; /* level 1, data */
    __asm volatile("dsb" ::: "memory");
    const uint32_t ccsidr = REG(SCB_CCSIDR);
    const uint32_t sets = ((ccsidr >> 13) & 0x7FFFu) + 1u, ways = ((ccsidr >> 3) & 0x3FFu) + 1u;
    const uint32_t set_shift = (ccsidr & 7u) + 4u;                          /* log2 of the line's bytes */
    const uint32_t way_shift = ways > 1u ? (uint32_t)__builtin_clz(ways - 1u) : 0u; /* the way in the top bits */
    for (uint32_t way = 0; way < ways; way++)
        for (uint32_t set = 0; set < sets; set++)
            REG(SCB_DCISW) = (way << way_shift) | (set << set_shift);
    __asm volatile("dsb" ::: "memory");
    REG(SCB_CCR) |= CCR_IC | CCR_DC;
    __asm volatile("dsb\n\tisb" ::: "memory");
}
#endif

__attribute__((noreturn, used)) void reset_c(void)
{
#ifdef LNN_CORE_CACHES
    enable_caches();
#endif
    /* word copies: the linker script aligns .data and .bss to 4 */
    const uint32_t *src = &__data_load;
    for (uint32_t *dst = &__data_start; dst < &__data_end;)
        *dst++ = *src++;
    for (uint32_t *dst = &__bss_start; dst < &__bss_end;)
        *dst++ = 0;
    main();
    for (;;)
        board_reset();
}

/* Passes the stacked exception frame (MSP or PSP, from EXC_RETURN bit 2).
 * ARMv6-M has no IT blocks nor TST with an immediate: a branch instead; BL
 * (which reaches anywhere, unlike a 16-bit B) since fault_c never returns. */
__attribute__((naked)) void Fault_Handler(void)
{
    __asm volatile(
        "movs r0, #4\n"
        "mov r1, lr\n"
        "tst r0, r1\n"
        "beq 1f\n"
        "mrs r0, psp\n"
        "bl fault_c\n"
        "1:\n"
        "mrs r0, msp\n"
        "bl fault_c\n");
}

__attribute__((used)) void fault_c(const uint32_t *frame)
{
    uint32_t ipsr;
    __asm volatile("mrs %0, ipsr" : "=r"(ipsr));
    board_record_fault(ipsr & 0x1FFu, frame[6]);
    board_reset();
}

void Default_Handler(void)
{
    uint32_t ipsr;
    __asm volatile("mrs %0, ipsr" : "=r"(ipsr));
    board_record_fault(ipsr & 0x1FFu, 0);
    board_reset();
}
