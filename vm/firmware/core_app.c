/*
 * core_app.c - the smallest application of the VM: lnn_init and lnn_run on
 * a model in a const array, no protocol, no board. `invoke size` links it
 * (python/lnnedge/footprint.py) to measure the VM core an application pays
 * for (loader, verifier, interpreter, the kernels of the model's ops); it is
 * never run. The model comes from a generated file defining lnn_core_model
 * and lnn_core_model_len; LNN_CORE_ARENA, LNN_CORE_IN and LNN_CORE_OUT are
 * its arena bytes for one row and its input and output floats.
 */
#include "lnnvm.h"

extern const unsigned char lnn_core_model[];
extern const unsigned int lnn_core_model_len;

static lnn_model model;
static float arena[(LNN_CORE_ARENA + 3) / 4];
static float in[LNN_CORE_IN], out[LNN_CORE_OUT];
volatile float lnn_core_result; /* keeps the run from being optimised away */

/* The entry point (the link names it with --entry; there is no startup). */
void lnn_core_main(void);
void lnn_core_main(void)
{
    if (lnn_init(&model, lnn_core_model, lnn_core_model_len, arena, sizeof arena) != LNN_OK)
        return;
    const float *ins[1] = {in};
    float *outs[1] = {out};
    if (lnn_run(&model, ins, outs, 1) == LNN_OK)
        lnn_core_result = out[0];
}
