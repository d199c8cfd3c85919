/*
 * main.c - a Cortex-M4F app with a model compiled in (model.c from `invoke
 * export --format c`: a const array in flash), its arena a static buffer of
 * MODEL_ARENA_SIZE bytes: no heap. It runs the test cases bundled in the
 * model one row at a time and writes each case's outputs to UART0 as the
 * bits of the floats (exact, to compare with the host VM; no printf, so no
 * float formatting in the image), then whether they are within the model's
 * tolerance of the expected ones.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "lnnvm.h"
#include "model.h"

/* UART0 of the MPS2+: a CMSDK APB UART (ARM DDI 0479C, 4.3) */
#define UART0_DATA (*(volatile uint32_t *)0x40004000u)
#define UART0_STATE (*(volatile uint32_t *)0x40004004u)
#define UART0_CTRL (*(volatile uint32_t *)0x40004008u)
#define UART0_BAUDDIV (*(volatile uint32_t *)0x40004010u)

static _Alignas(64) unsigned char arena[MODEL_ARENA_SIZE];
static lnn_model m;

static void put(const char *s)
{
    for (; *s; s++) {
        while (UART0_STATE & 1u) { /* TX buffer full */
        }
        UART0_DATA = (uint32_t)(unsigned char)*s;
    }
}

static void put_hex(uint32_t v)
{
    char s[9];
    for (int i = 7; i >= 0; i--, v >>= 4)
        s[i] = "0123456789abcdef"[v & 15u];
    s[8] = '\0';
    put(s);
}

static void put_dec(uint32_t v)
{
    char s[11];
    int i = 10;
    s[i] = '\0';
    do {
        s[--i] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    put(s + i);
}

int main(void)
{
    UART0_BAUDDIV = 16u; /* any value >= 16 for QEMU; a board sets PCLK / baud */
    UART0_CTRL = 1u;     /* TX enable */
    lnn_status s = lnn_init(&m, model, MODEL_SIZE, arena, sizeof arena);
    if (s != LNN_OK) {
        put("lnn_init: ");
        put(lnn_status_str(s));
        put("\n");
        return 1;
    }
    lnn_tests t;
    if (!lnn_get_tests(&m, &t) || lnn_num_inputs(&m) != 1 || lnn_num_outputs(&m) != 1) {
        put("this example wants one input, one output and a bundled test set\n");
        return 1;
    }
    float out[MODEL_OUTPUT0_ELEMS];
    int passed = 1;
    for (uint32_t c = 0; c < t.count; c++) {
        const float *in[1] = {t.inputs + (size_t)c * t.in_floats};
        float *outs[1] = {out};
        s = lnn_run(&m, in, outs, 1);
        if (s != LNN_OK) {
            put("lnn_run: ");
            put(lnn_status_str(s));
            put("\n");
            return 1;
        }
        put("case ");
        put_dec(c);
        put(":");
        for (uint32_t j = 0; j < MODEL_OUTPUT0_ELEMS; j++) {
            uint32_t u;
            memcpy(&u, &out[j], sizeof u);
            put(" ");
            put_hex(u);
            passed &= fabsf(out[j] - t.expected[(size_t)c * t.out_floats + j]) <= t.max_abs_err;
        }
        put("\n");
    }
    put("isa ");
    put(lnn_isa(&m));
    put(", ");
    put_dec(t.count);
    put(passed ? " cases, PASSED\n" : " cases, FAILED\n");
    return passed ? 0 : 2;
}
