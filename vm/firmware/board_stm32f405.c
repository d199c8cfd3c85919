/*
 * board_stm32f405.c - an STM32F405 (Cortex-M4F, 1 MB flash at 0x08000000,
 * 128 KB SRAM at 0x20000000 + 64 KB CCM at 0x10000000), with the protocol
 * on USART1 (PA9 TX, PA10 RX, alternate function 7), as on the Netduino
 * Plus 2 that QEMU emulates as netduinoplus2 (RM0090 is the reference
 * manual for the registers below).
 *
 * Clock: the PLL from the 16 MHz HSI (no board-specific crystal):
 * HSI / M 8 * N 168 / P 2 = 168 MHz SYSCLK, Q 7 = 48 MHz; flash 5 wait
 * states with prefetch and caches; APB1 = HCLK / 4 (42 MHz), APB2 = HCLK / 2
 * (84 MHz, USART1's clock). QEMU 7.2 does not model the RCC (it reads as
 * zero: no HSIRDY, which a real part always shows after reset) and runs the
 * core at a fixed 168 MHz: the setup is skipped there.
 *
 * USART1 (RM0090 section 30.6): 0x00 SR (bit 3 ORE, 5 RXNE, 6 TC, 7 TXE),
 * 0x04 DR, 0x08 BRR (fCK / baud, 16x oversampling), 0x0C CR1 (bit 2 RE,
 * 3 TE, 5 RXNEIE, 13 UE). Its interrupt is IRQ 37. Receiving is interrupt
 * driven into the ring of board_cortexm.c (the USART holds one byte);
 * sending polls TXE. Cycles: cycles_v7m.c (SysTick under QEMU, DWT on the
 * part).
 */
#include "board.h"
#include "cortexm.h"

#define SYSCLK_HZ 168000000u
#define APB2_HZ (SYSCLK_HZ / 2u)
#define UART_BAUD 115200u

#define RCC 0x40023800u
#define RCC_CR (RCC + 0x00u)
#define RCC_PLLCFGR (RCC + 0x04u)
#define RCC_CFGR (RCC + 0x08u)
#define RCC_AHB1ENR (RCC + 0x30u)
#define RCC_APB2ENR (RCC + 0x44u)
#define CR_HSIRDY (1u << 1)
#define CR_PLLON (1u << 24)
#define CR_PLLRDY (1u << 25)
#define FLASH_ACR 0x40023C00u

#define GPIOA 0x40020000u
#define GPIO_MODER (GPIOA + 0x00u)
#define GPIO_AFRH (GPIOA + 0x24u)

#define USART1 0x40011000u
#define USART_SR (USART1 + 0x00u)
#define USART_DR (USART1 + 0x04u)
#define USART_BRR (USART1 + 0x08u)
#define USART_CR1 (USART1 + 0x0Cu)
#define SR_ORE (1u << 3)
#define SR_RXNE (1u << 5)
#define SR_TXE (1u << 7)
#define CR1_RE (1u << 2)
#define CR1_TE (1u << 3)
#define CR1_RXNEIE (1u << 5)
#define CR1_UE (1u << 13)

#define IRQ_USART1 37u

/* Bounded waits: a flag that never comes (a broken part) ends the wait
 * rather than the boot; the clock then stays on the HSI. */
static int wait_for(uint32_t reg, uint32_t mask, uint32_t value)
{
    for (uint32_t n = 0; n < 1000000u; n++)
        if ((REG(reg) & mask) == value)
            return 1;
    return 0;
}

static void clock_init(void)
{
    if (!(REG(RCC_CR) & CR_HSIRDY))
        return; /* QEMU: no RCC model, the clock is fixed */
    /* PLLM 8 (bits 0-5), PLLN 168 (6-14), PLLP /2 (16-17 = 0), source HSI (22 = 0), PLLQ 7 (24-27) */
    REG(RCC_PLLCFGR) = 8u | (168u << 6) | (7u << 24);
    REG(RCC_CR) |= CR_PLLON;
    if (!wait_for(RCC_CR, CR_PLLRDY, CR_PLLRDY))
        return;
    /* 5 wait states (LATENCY bits 0-2), prefetch (8), instruction (9) and data (10) caches */
    REG(FLASH_ACR) = 5u | (1u << 8) | (1u << 9) | (1u << 10);
    /* HPRE /1, PPRE1 /4 (bits 10-12 = 101), PPRE2 /2 (bits 13-15 = 100), then SW = PLL (2) */
    REG(RCC_CFGR) = (5u << 10) | (4u << 13);
    REG(RCC_CFGR) |= 2u;
    wait_for(RCC_CFGR, 3u << 2, 2u << 2); /* SWS: PLL */
}

static void USART1_Handler(void)
{
    uint32_t sr;
    while ((sr = REG(USART_SR)) & (SR_RXNE | SR_ORE)) {
        if (sr & SR_ORE)
            cortexm_rx_lost(); /* reading SR then DR clears it */
        const uint8_t b = (uint8_t)REG(USART_DR);
        if (sr & SR_RXNE)
            cortexm_rx_put(b);
    }
}

/* The interrupt lines up to USART1's (after the core's 16 entries). The part
 * has 82; the table stops at the last one this firmware enables: a line
 * whose NVIC enable bit is clear is never taken, so its entry is never read
 * (176 bytes of flash). */
#define D Default_Handler
#define D8 D, D, D, D, D, D, D, D
__attribute__((section(".vectors.irq"), used)) const lnn_vector board_irq_vectors[IRQ_USART1 + 1u] = {
    D8, D8, D8, D8,       /* 0-31 */
    D, D, D, D, D,        /* 32-36 */
    USART1_Handler,       /* 37 */
};
#undef D8
#undef D
_Static_assert(IRQ_USART1 == 37u, "the table above puts USART1 at 37");

void board_write(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        while (!(REG(USART_SR) & SR_TXE)) {
        }
        REG(USART_DR) = p[i];
    }
}

uint32_t board_clock_hz(void)
{
    return SYSCLK_HZ;
}

uint32_t board_entropy(void)
{
    return cortexm_noinit_hash() ^ cycles_v7m_entropy();
}

const char *board_name(void)
{
    return "stm32f405";
}

void board_init(void)
{
    cortexm_boot();
    clock_init();
    cycles_v7m_init();

    REG(RCC_AHB1ENR) |= 1u;      /* GPIOA */
    REG(RCC_APB2ENR) |= 1u << 4; /* USART1 */
    /* PA9, PA10: alternate function (MODER 10), AF7 */
    REG(GPIO_MODER) = (REG(GPIO_MODER) & ~(0xFu << 18)) | (0xAu << 18);
    REG(GPIO_AFRH) = (REG(GPIO_AFRH) & ~(0xFFu << 4)) | (0x77u << 4);

    REG(USART_CR1) = 0;
    REG(USART_BRR) = (APB2_HZ + UART_BAUD / 2u) / UART_BAUD;
    REG(USART_CR1) = CR1_UE | CR1_TE | CR1_RE | CR1_RXNEIE;
    cortexm_enable_irq(IRQ_USART1);
    __asm volatile("cpsie i" ::: "memory");
}
