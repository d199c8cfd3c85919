/*
 * main.c - a Linux app with a model compiled in: the model's bytes are a
 * const array (model.c from `invoke export --format c`), the arena a static
 * buffer of MODEL_ARENA_SIZE bytes, so nothing is allocated. It runs the
 * test cases bundled in the model one row at a time and prints each case's
 * outputs as the bits of the floats (exact, to compare with the host VM),
 * then whether they are within the model's tolerance of the expected ones.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lnnvm.h"
#include "model.h"

static _Alignas(64) unsigned char arena[MODEL_ARENA_SIZE];
static lnn_model m; /* large (the execution plan): not on the stack */

/* The bits of a float, printed exactly (no decimal rounding). */
static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

int main(void)
{
    lnn_status s = lnn_init(&m, model, MODEL_SIZE, arena, sizeof arena);
    if (s != LNN_OK) {
        fprintf(stderr, "lnn_init: %s (%s)\n", lnn_status_str(s), lnn_status_name(s));
        return 1;
    }
    lnn_tests t;
    if (!lnn_get_tests(&m, &t) || lnn_num_inputs(&m) != 1 || lnn_num_outputs(&m) != 1) {
        fprintf(stderr, "this example wants one input, one output and a bundled test set\n");
        return 1;
    }
    float out[MODEL_OUTPUT0_ELEMS];
    float worst = 0.0f;
    for (uint32_t c = 0; c < t.count; c++) {
        const float *in[1] = {t.inputs + (size_t)c * t.in_floats};
        float *outs[1] = {out};
        s = lnn_run(&m, in, outs, 1);
        if (s != LNN_OK) {
            fprintf(stderr, "lnn_run: %s\n", lnn_status_str(s));
            return 1;
        }
        printf("case %" PRIu32 ":", c);
        for (uint32_t j = 0; j < MODEL_OUTPUT0_ELEMS; j++) {
            printf(" %08" PRIx32, bits(out[j]));
            const float err = fabsf(out[j] - t.expected[(size_t)c * t.out_floats + j]);
            worst = err > worst ? err : worst;
        }
        printf("\n");
    }
    const int passed = worst <= t.max_abs_err;
    printf("isa %s, %" PRIu32 " cases, max_abs_err %g, %s\n", lnn_isa(&m), t.count, (double)worst,
           passed ? "PASSED" : "FAILED");
    return passed ? 0 : 2;
}
