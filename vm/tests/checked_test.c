/*
 * checked_test.c - the checked build (LNN_CHECKED) turns a verifier gap into
 * LNN_E_CHECKED, not a stray read.
 *
 *   lnn_checked_test MODEL
 *
 * A gap is simulated after a successful lnn_init: the run plan's address of
 * a constant moved to the end of the constants (plan), then a constant's
 * tensor entry moved there in the model buffer (the instruction
 * interpreter, which reads the table when it runs). Each run must stop with
 * LNN_E_CHECKED before the kernel reads anything; nothing outside the
 * buffers is touched, so the sanitizers stay quiet. The model needs a plan
 * and a constant of more than one element (every compiled model has both).
 * Exit 0 and "ok" when both runs stop so, 1 otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = n > 0 ? aligned_alloc(64, ((size_t)n + 63) & ~(size_t)63) : NULL;
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return p;
}

/* lnn_init on buf with an arena for one row; the first CONST tensor of more
 * than one element that a plan reference reads (its reference in *ref). */
static int init(lnn_model *m, const unsigned char *buf, size_t len, void **arena, uint32_t *ref)
{
    const size_t need = lnn_arena_size(buf, len, 1);
    *arena = aligned_alloc(64, (need + 63) & ~(size_t)63);
    if (!*arena || lnn_init(m, buf, len, *arena, need) != LNN_OK || m->plan_steps == 0)
        return 0;
    for (uint32_t i = 0; i < m->plan_refs; i++) {
        const lnn_plan_ref *r = &m->ref[i];
        if (r->kind == 0 /* CONST */ && r->stride == 0 && r->elems > 1 &&
            lnn_tensor_entry(m, r->tensor)[LNN_T_DTYPE] == LNN_DT_F32) {
            *ref = i;
            return 1;
        }
    }
    return 0;
}

static lnn_status run_once(lnn_model *m)
{
    static float in[LNN_MAX_IO][4096], out[LNN_MAX_IO][4096];
    const float *ip[LNN_MAX_IO];
    float *op[LNN_MAX_IO];
    for (uint32_t i = 0; i < LNN_MAX_IO; i++) {
        ip[i] = in[i];
        op[i] = out[i];
        if ((i < lnn_num_inputs(m) && lnn_input_row_elems(m, i) > 4096) ||
            (i < lnn_num_outputs(m) && lnn_output_row_elems(m, i) > 4096))
            return LNN_E_ARG; /* rows this test does not hold */
    }
    return lnn_run(m, ip, op, 1);
}

int main(int argc, char **argv)
{
    size_t len = 0;
    unsigned char *buf = argc == 2 ? read_file(argv[1], &len) : NULL;
    if (!buf) {
        fputs("usage: lnn_checked_test MODEL (a readable .lnnb)\n", stderr);
        return 2;
    }
    static lnn_model m;
    void *arena = NULL;
    uint32_t ref = 0;
    if (!init(&m, buf, len, &arena, &ref) || run_once(&m) != LNN_OK) {
        fputs("lnn_checked_test: the model must load, run, have a plan and a float32 constant\n", stderr);
        return 1;
    }
    /* the plan: the constant's address at the end of the constants */
    m.ptr[ref] = (float *)(uintptr_t)(m.consts + m.consts_size);
    const lnn_status plan = run_once(&m);
    free(arena);

    /* the interpreter: the constant's entry pointing at the last float of
     * the constants (4-aligned, inside the section, its elements not) */
    if (!init(&m, buf, len, &arena, &ref))
        return 1;
    const uint32_t t = m.ref[ref].tensor;
    lnn_use_plan(&m, 0);
    unsigned char *e = buf + (lnn_tensor_entry(&m, t) - m.buf) + LNN_T_OFFSET;
    const uint32_t last = m.consts_size - 4;
    memcpy(e, &last, 4); /* little-endian targets only (lnnvm.h) */
    const lnn_status interp = run_once(&m);
    free(arena);
    free(buf);
    printf("plan: %s, interpreter: %s\n", lnn_status_name(plan), lnn_status_name(interp));
    if (plan != LNN_E_CHECKED || interp != LNN_E_CHECKED)
        return 1;
    puts("ok");
    return 0;
}
