/*
 * fuzz_run.c - libFuzzer target: lnn_init, then lnn_run on every kernel set
 * the processor supports (lnn_use_kernels), with a batch size and input
 * values taken from the fuzz data.
 *
 * Input layout: the model (its header's file_size bytes), then a tail:
 * tail[0] % 4 + 1 is the batch size, tail[1..] the input floats (little-
 * endian, repeated to fill the inputs; a short tail gives a fixed pattern).
 *
 * Model, arena, inputs and outputs are heap blocks of exactly their size,
 * so ASan sees any access past them. Checks beyond "no sanitizer report":
 *   - lnn_run of an accepted model returns LNN_OK for 1 <= batch <=
 *     lnn_max_batch and E_BATCH / E_ARG for bad batches and arguments;
 *   - no read of unwritten memory: each kernel set runs twice, with the
 *     arena and the output buffers filled with different garbage; every
 *     output the program wrote (seen through the trace hook) must be
 *     bit-identical in both runs. (A read of an unwritten arena or output
 *     byte would carry the garbage into the result: what E_UNINIT forbids.)
 *     Every run follows lnn_reset, so a stateful model starts each from
 *     zero state: the garbage in the state part must never show either.
 *     The float32 copies of the float16 constants, written by lnn_init, are
 *     not garbage: they are restored after the fill, and must be intact
 *     after every run (no instruction writes over them).
 *   - the run plan built by lnn_init and the plain interpreter
 *     (lnn_use_plan 1 / 0) give bit-identical outputs on each kernel set.
 * A run is cut short (longjmp out of the trace hook) after a work budget
 * (result floats plus a fixed cost per compute instruction), so long loops
 * (up to LNN_MAX_STEPS instructions, allowed) do not make the fuzzer crawl.
 */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "internal.h"

#define ARENA_CAP (1u << 22)   /* bytes: larger models are not run */
#define IO_CAP (1u << 20)      /* floats over all inputs and outputs */
#define WORK_BUDGET (1u << 20) /* result floats + INSN_WORK per instruction, per run */
#define INSN_WORK 64u          /* what one instruction costs besides its floats */

static jmp_buf budget_jmp;

typedef struct {
    float *const *outputs;
    uint32_t num_outputs;
    uint32_t written; /* bit i: output i was a destination */
    uint64_t work;
} trace_state;

static void on_trace(void *ctx, uint32_t pc, uint32_t tensor, const float *data,
                     uint32_t count)
{
    trace_state *t = (trace_state *)ctx;
    (void)pc;
    (void)tensor;
    for (uint32_t i = 0; i < t->num_outputs; i++)
        if (data == t->outputs[i])
            t->written |= 1u << i;
    t->work += (uint64_t)count + INSN_WORK;
    if (t->work > WORK_BUDGET)
        longjmp(budget_jmp, 1);
}

static void fail(const char *what, const char *isa, uint32_t batch, int status)
{
    fprintf(stderr, "fuzz_run: %s (kernels %s, batch %u, status %s)\n", what, isa,
            (unsigned)batch, lnn_status_name((lnn_status)status));
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    lnn_fuzz_with_tail = 1;
    return 0;
}

static float tail_float(const uint8_t *tail, size_t tlen, size_t i)
{
    if (tlen < 5) {
        static const float pattern[] = {0.5f, -1.25f, 2.0f, 0.0f, -0.75f, 3.5f, 1.0f};
        return pattern[i % 7];
    }
    const size_t n = (tlen - 1) / 4;
    const uint8_t *p = tail + 1 + 4 * (i % n);
    const uint32_t bits = lnn_rd32(p);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Copies (restore) or compares the float32 copies of the DT_F16 constants
 * between the arena and `kept`, the arena as lnn_init left it; 0 if they
 * differ. */
static int f16_copies(const lnn_model *m, uint8_t *arena, const uint8_t *kept, int restore)
{
    for (uint32_t t = 0; t < m->num_tensors; t++) {
        lnn_tensor x;
        lnn_tensor_read(m, t, &x);
        if (x.dtype != LNN_DT_F16)
            continue;
        const size_t bytes = 4 * (size_t)lnn_tensor_elems(&x);
        if (restore)
            memcpy(arena + x.widened, kept + x.widened, bytes);
        else if (memcmp(arena + x.widened, kept + x.widened, bytes) != 0)
            return 0;
    }
    return 1;
}

/* Runs once with the arena (but for the float16 constants' copies) and
 * outputs filled with `garbage`. Returns 0 when cut short by the work
 * budget. */
static int run_once(lnn_model *m, uint8_t *arena, const uint8_t *kept, size_t arena_len,
                    float **in, float **out, const size_t *out_n, uint32_t nout,
                    uint32_t batch, uint8_t garbage, trace_state *ts, const char *isa)
{
    if (arena_len) {
        memset(arena, garbage, arena_len);
        f16_copies(m, arena, kept, 1);
    }
    for (uint32_t i = 0; i < nout; i++)
        memset(out[i], garbage ^ 0x5A, out_n[i] * sizeof(float));
    ts->written = 0;
    ts->work = 0;
    if (lnn_reset(m) != LNN_OK)
        fail("lnn_reset failed on an accepted model", isa, batch, 0);
    lnn_set_trace(m, on_trace, ts);
    if (setjmp(budget_jmp) != 0) {
        lnn_set_trace(m, NULL, NULL);
        return 0;
    }
    const lnn_status s = lnn_run(m, (const float *const *)in, out, batch);
    lnn_set_trace(m, NULL, NULL);
    if (s != LNN_OK)
        fail("lnn_run failed on an accepted model", isa, batch, s);
    if (arena_len && !f16_copies(m, arena, kept, 0))
        fail("a run wrote over a float16 constant's float32 copy", isa, batch, 0);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const size_t mlen = lnn_fuzz_model_len(data, size);
    const uint8_t *tail = data + mlen;
    const size_t tlen = size - mlen;
    const uint32_t batch = 1 + (tlen ? tail[0] % 4u : 0u);

    uint8_t *buf = (uint8_t *)malloc(mlen ? mlen : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, mlen);
    const size_t need = lnn_arena_size(buf, mlen, batch);
    if (need > ARENA_CAP) {
        free(buf);
        return 0;
    }
    uint8_t *arena = need ? (uint8_t *)malloc(need) : NULL;
    lnn_model m;
    lnn_status s = lnn_init(&m, buf, mlen, arena, need);
    if (s != LNN_OK) {
        free(arena);
        free(buf);
        return 0;
    }
    if (lnn_max_batch(&m) < batch)
        fail("arena of lnn_arena_size(batch) does not hold batch rows", lnn_isa(&m), batch, 0);
    uint8_t *kept = need ? (uint8_t *)malloc(need) : NULL;
    if (kept)
        memcpy(kept, arena, need);

    const uint32_t nin = lnn_num_inputs(&m), nout = lnn_num_outputs(&m);
    float *in[LNN_MAX_IO] = {0}, *out[LNN_MAX_IO] = {0}, *ref[LNN_MAX_IO] = {0};
    size_t in_n[LNN_MAX_IO] = {0}, out_n[LNN_MAX_IO] = {0}, total = 0;
    for (uint32_t i = 0; i < nin; i++) {
        in_n[i] = (size_t)lnn_input_row_elems(&m, i) * (lnn_input_batched(&m, i) ? batch : 1);
        total += in_n[i];
    }
    for (uint32_t i = 0; i < nout; i++) {
        out_n[i] = (size_t)lnn_output_row_elems(&m, i) * (lnn_output_batched(&m, i) ? batch : 1);
        total += out_n[i];
    }
    int ok = total <= IO_CAP && (kept || !need);
    for (uint32_t i = 0; ok && i < nin; i++) {
        in[i] = (float *)malloc(in_n[i] * sizeof(float));
        ok = in[i] != NULL;
        for (size_t k = 0; ok && k < in_n[i]; k++)
            in[i][k] = tail_float(tail, tlen, k + 131 * i);
    }
    for (uint32_t i = 0; ok && i < nout; i++) {
        out[i] = (float *)malloc(out_n[i] * sizeof(float));
        ref[i] = (float *)malloc(out_n[i] * sizeof(float));
        ok = out[i] && ref[i];
    }

    if (ok) {
        /* bad batches and arguments are refused, not run */
        if (lnn_run(&m, (const float *const *)in, out, 0) != LNN_E_BATCH)
            fail("batch 0 accepted", lnn_isa(&m), 0, 0);
        if (lnn_max_batch(&m) < UINT32_MAX &&
            lnn_run(&m, (const float *const *)in, out, lnn_max_batch(&m) + 1) != LNN_E_BATCH)
            fail("batch past max accepted", lnn_isa(&m), lnn_max_batch(&m) + 1, 0);
        if (lnn_run(&m, NULL, out, batch) != LNN_E_ARG)
            fail("NULL inputs accepted", lnn_isa(&m), batch, 0);

        trace_state ts;
        ts.outputs = out;
        ts.num_outputs = nout;
        const char *isa;
        for (uint32_t k = 0; (isa = lnn_kernel_set_name(k)) != NULL; k++) {
            if (lnn_use_kernels(&m, isa) != LNN_OK)
                continue; /* not supported by this processor */
            const int has_plan = lnn_use_plan(&m, 1);
            if (!run_once(&m, arena, kept, need, in, out, out_n, nout, batch, 0xA5, &ts, isa))
                break; /* over the work budget: the other sets would be too */
            const uint32_t written = ts.written;
            for (uint32_t i = 0; i < nout; i++)
                memcpy(ref[i], out[i], out_n[i] * sizeof(float));
            /* the same again on other garbage, then (if there is a plan)
             * without the plan, on the first garbage */
            for (int pass = 0; pass < (has_plan ? 2 : 1); pass++) {
                if (pass == 1)
                    lnn_use_plan(&m, 0);
                const uint8_t garbage = pass == 0 ? 0x3C : 0xA5;
                if (!run_once(&m, arena, kept, need, in, out, out_n, nout, batch, garbage, &ts, isa))
                    break;
                if (ts.written != written)
                    fail(pass ? "plan and interpreter write different outputs"
                              : "different outputs written in two runs",
                         isa, batch, 0);
                for (uint32_t i = 0; i < nout; i++)
                    if ((written >> i & 1u) &&
                        memcmp(ref[i], out[i], out_n[i] * sizeof(float)) != 0)
                        fail(pass ? "plan and interpreter give different outputs"
                                  : "output depends on unwritten memory (read before write)",
                             isa, batch, 0);
            }
        }
    }
    for (uint32_t i = 0; i < LNN_MAX_IO; i++) {
        free(in[i]);
        free(out[i]);
        free(ref[i]);
    }
    free(kept);
    free(arena);
    free(buf);
    return 0;
}
