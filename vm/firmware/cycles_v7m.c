/*
 * cycles_v7m.c - the cycle counter of an ARMv7-M core (Cortex-M4F):
 * DWT CYCCNT when the core has a working one (a real Cortex-M4 does); QEMU
 * 7.2 does not model the DWT (its registers read as zero), so the firmware
 * checks at boot that CYCCNT advances and otherwise uses SysTick on the core
 * clock, counting down from 0xFFFFFF with that reload, extended to 32 bits
 * by counting wraps in its interrupt.
 */
#include "board.h"
#include "cortexm.h"

#define SYST_CSR 0xE000E010u
#define SYST_RVR 0xE000E014u
#define SYST_CVR 0xE000E018u
#define SCB_DEMCR 0xE000EDFCu
#define DWT_CTRL 0xE0001000u
#define DWT_CYCCNT 0xE0001004u
#define DWT_LAR 0xE0001FB0u
#define DWT_LSR 0xE0001FB4u
#define CORESIGHT_UNLOCK 0xC5ACCE55u

static int use_dwt;
static volatile uint32_t systick_wraps;

void SysTick_Handler(void)
{
    systick_wraps++;
}

static uint32_t systick_cycles(void)
{
    uint32_t wraps, val;
    do {
        wraps = systick_wraps;
        val = REG(SYST_CVR);
    } while (wraps != systick_wraps);
    /* counts down from 0xFFFFFF: 2^24 cycles per wrap */
    return (wraps << 24) + (0xFFFFFFu - val);
}

uint32_t board_cycles(void)
{
    return use_dwt ? REG(DWT_CYCCNT) : systick_cycles();
}

const char *board_cycle_counter(void)
{
    return use_dwt ? "dwt" : "systick";
}

void cycles_v7m_init(void)
{
    /* SysTick always runs: it also extends the entropy */
    REG(SYST_RVR) = 0xFFFFFFu;
    REG(SYST_CVR) = 0;
    REG(SYST_CSR) = 7u; /* enable, interrupt on wrap, core clock */

    REG(SCB_DEMCR) |= 1u << 24; /* TRCENA */
    /* a Cortex-M7 locks its DWT against software writes (LSR: lock implemented
     * and set) until the CoreSight key is written: CYCCNTENA would not stick */
    if ((REG(DWT_LSR) & 3u) == 3u)
        REG(DWT_LAR) = CORESIGHT_UNLOCK;
    const uint32_t ctrl = REG(DWT_CTRL);
    if (ctrl & (1u << 25)) /* NOCYCCNT */
        return;
    REG(DWT_CYCCNT) = 0;
    REG(DWT_CTRL) = ctrl | 1u; /* CYCCNTENA */
    const uint32_t a = REG(DWT_CYCCNT);
    for (volatile int i = 0; i < 100; i++) {
    }
    use_dwt = REG(DWT_CYCCNT) != a;
}

uint32_t cycles_v7m_entropy(void)
{
    /* the SysTick phase depends on how long the boot and the host took */
    return (REG(SYST_CVR) * 0x9E3779B1u) ^ REG(DWT_CYCCNT);
}
