/*
 * interp.c - lnn_run: the interpreter of verified code, and its run plan.
 *
 * No check at run time: lnn_init proved that every opcode is valid, every
 * tensor index in range, the stack never under- or overflows, loops are
 * balanced and every address formed below lies inside its region for any
 * batch <= max_batch.
 *
 * The plan. The verifier proves that the stack holds the same tensors at a
 * given instruction in every run (loop bodies leave it unchanged), so the
 * operands of every compute instruction are known at lnn_init. lnn_plan_build
 * (called by lnn_init) turns the code into steps - LOOP, END and one per
 * compute instruction - each with its destinations and operands as tensor
 * references (region, offset, loop stride) and its shapes planned once (the
 * counts per batch row, broadcast plans, element-wise operand modes). lnn_run
 * then resolves every reference's base address once per run and executes
 * the steps: no PUSH, DROP or shape work inside loops. The plan lives in the
 * lnn_model (LNN_PLAN_STEPS / LNN_PLAN_REFS); a larger model runs on the
 * instruction interpreter below it, which plans each compute instruction
 * when it executes it, with the same functions (lnn_plan_compute, lnn_exec),
 * so both paths compute the same thing.
 */
#include <string.h>

#include "internal.h"
#include "graph.h"
#include "kernels.h"

/* Reference kinds (lnn_plan_ref.kind): the region, and whether the tensor
 * is batched (its count scales with the batch). */
enum {
    LNN_REF_CONST = 0,
    LNN_REF_FIXED = 1,   /* unbatched ARENA */
    LNN_REF_BATCHED = 2, /* batched ARENA */
    LNN_REF_INPUT = 3,
    LNN_REF_OUTPUT = 4,
    LNN_REF_STATE = 5, /* batched, after the batched arena */
    LNN_REF_REGION = 7,
    LNN_REF_BATCH = 8 /* flag: batched */
};

/* Everything an address depends on during one run. */
typedef struct {
    const lnn_model *m;
    const float *const *in;
    float *const *out;
    size_t batch;
    size_t state_base; /* where the state part starts in the arena */
    uint32_t index[LNN_MAX_LOOP_DEPTH + 1]; /* [d]: iteration of the loop at depth d; [0] = 0 */
#ifdef LNN_CHECKED
    lnn_status status; /* LNN_E_CHECKED once a range check failed */
#endif
} lnn_ctx;

#ifdef LNN_PROFILE
/* The profiling build's hook (lnnvm.h): the time since the previous step
 * started goes to that step's pc, and this step's (pc LNN_PROFILE_NONE: the
 * run's end) starts now. Not compiled at all in the normal build. */
static void lnn_profile_mark(lnn_profile *p, uint32_t pc)
{
    const uint32_t now = lnn_profile_clock();
    if (p->last_pc != LNN_PROFILE_NONE)
        p->counter[p->last_pc].ticks += (uint32_t)(now - p->last);
    if (pc != LNN_PROFILE_NONE)
        p->counter[pc].calls++;
    p->last_pc = pc;
    p->last = now;
}

#define LNN_PROFILE_MARK(m, pc)                       \
    do {                                              \
        if ((m)->profile)                             \
            lnn_profile_mark((m)->profile, (pc));     \
    } while (0)

lnn_status lnn_set_profile(lnn_model *m, lnn_profile *p)
{
    if (!m || (p && (!p->counter || p->count < m->code_words)))
        return LNN_E_ARG;
    if (p)
        p->last_pc = LNN_PROFILE_NONE;
    m->profile = p;
    return LNN_OK;
}

uint32_t lnn_code_words(const lnn_model *m)
{
    return m ? m->code_words : 0;
}

uint64_t lnn_profile_overhead(uint32_t marks)
{
    lnn_profile_counter one = {0, 0};
    lnn_profile p = {&one, 1, LNN_PROFILE_NONE, 0};
    for (uint32_t i = 0; i < marks; i++)
        lnn_profile_mark(&p, 0);
    lnn_profile_mark(&p, LNN_PROFILE_NONE);
    return one.ticks;
}
#else
#define LNN_PROFILE_MARK(m, pc) ((void)0)
#endif

static size_t lnn_ref_count(const lnn_ctx *c, const lnn_plan_ref *r)
{
    return (size_t)r->elems * ((r->kind & LNN_REF_BATCH) ? c->batch : 1);
}

/* Base address of a reference in this run (a CONST's first step). */
static uint8_t *lnn_ref_base(const lnn_ctx *c, const lnn_plan_ref *r)
{
    const lnn_model *m = c->m;
    switch (r->kind & LNN_REF_REGION) {
    case LNN_REF_CONST:
        return (uint8_t *)(uintptr_t)(m->consts + r->offset); /* never written */
    case LNN_REF_FIXED:
        return m->arena + r->offset;
    case LNN_REF_BATCHED:
        return m->arena + m->batch_base + (size_t)r->offset * c->batch;
    case LNN_REF_STATE:
        return m->arena + c->state_base + (size_t)r->offset * c->batch;
    case LNN_REF_INPUT:
        return (uint8_t *)(uintptr_t)c->in[r->offset]; /* never written */
    default:
        return (uint8_t *)c->out[r->offset];
    }
}

/* 1 if the reference's address depends on the run (batch, inputs,
 * outputs); constants and unbatched arena tensors stay where they are. */
static int lnn_ref_varies(const lnn_plan_ref *r)
{
    const uint32_t region = r->kind & LNN_REF_REGION;
    return region != LNN_REF_CONST && region != LNN_REF_FIXED;
}

/* ---- planning one compute instruction --------------------------------------- */

/* Shape of tensor t in a run: batch substituted for a batched dim 0. */
typedef struct {
    uint32_t rank;
    size_t dims[LNN_MAX_RANK];
    size_t count;
} lnn_rshape;

static void lnn_rshape_of(const lnn_model *m, uint32_t t, size_t batch, lnn_rshape *s)
{
    const uint8_t *e = lnn_tensor_entry(m, t);
    s->rank = e[LNN_T_RANK];
    s->count = 1;
    for (uint32_t i = 0; i < s->rank; i++) {
        size_t d = lnn_rd32(e + LNN_T_DIMS + 4 * i);
        if (i == 0 && (e[LNN_T_FLAGS] & LNN_TF_BATCH))
            d = batch;
        s->dims[i] = d;
        s->count *= d;
    }
}

static void lnn_ref_of(const lnn_model *m, uint32_t t, uint32_t depth, lnn_plan_ref *r)
{
    lnn_tensor x;
    lnn_tensor_read(m, t, &x);
    const int batched = (x.flags & LNN_TF_BATCH) != 0;
    r->offset = x.offset;
    r->stride = x.stride;
    r->elems = lnn_tensor_elems(&x);
    r->aux = 0;
    r->tensor = (uint16_t)t;
    r->depth = (uint8_t)depth;
    switch (x.region) {
    case LNN_REG_CONST:
        r->kind = LNN_REF_CONST;
        if (x.dtype == LNN_DT_F16) { /* read as its float32 copy (lnn_init) */
            r->kind = LNN_REF_FIXED;
            r->offset = x.widened;
        }
        break;
    case LNN_REG_ARENA:
        r->kind = batched ? LNN_REF_BATCHED : LNN_REF_FIXED;
        break;
    case LNN_REG_INPUT:
        r->kind = LNN_REF_INPUT;
        break;
    case LNN_REG_STATE:
        r->kind = LNN_REF_STATE;
        break;
    default:
        r->kind = LNN_REF_OUTPUT;
        break;
    }
    if (batched)
        r->kind |= LNN_REF_BATCH;
}

static int lnn_same_count(const lnn_plan_ref *a, const lnn_plan_ref *b)
{
    return a->elems == b->elems && (a->kind & LNN_REF_BATCH) == (b->kind & LNN_REF_BATCH);
}

/* s (unbatched) is a row of d for every batch: its dims after leading 1s are
 * d's last dims, not reaching d's batch dim. */
static int lnn_is_row(const lnn_model *m, uint32_t s, uint32_t d)
{
    lnn_tensor a, b;
    lnn_tensor_read(m, s, &a);
    lnn_tensor_read(m, d, &b);
    if ((a.flags & LNN_TF_BATCH) || a.rank > b.rank)
        return 0;
    const uint32_t pad = b.rank - a.rank;
    uint32_t j = 0;
    while (j < a.rank && a.dims[j] == 1)
        j++;
    for (; j < a.rank; j++)
        if (a.dims[j] != b.dims[pad + j] || (pad + j == 0 && (b.flags & LNN_TF_BATCH)))
            return 0;
    return 1;
}

/* Step parameters (lnn_plan_step.p) and reference aux values, per op:
 *   ADD..DIV       p[0] broadcast mode (lnn_bcast_mode), p[1] ROW inner
 *   LINEAR, MATMUL_NT, LINEAR_T, MATMUL_T and their _Q8 forms
 *                  p[0] M, p[1] K, p[2] rows of x per batch row (or in all);
 *                  _T destinations: aux = their columns M_i
 *   CONCAT         p[0] outer count per batch row, p[1] na, p[2] nb
 *   SPLIT          p[0] a's last dim, p[2] rows of a per batch row (or in
 *                  all); destinations: aux = their last dims
 *   EWISEn         p[0] instructions, p[1] the shortest ROW operand (0: none),
 *                  p[2] registers;
 *                  operands: aux = LNN_EW_* mode; the program: aux = its
 *                  fused form (lnn_ew_form)
 * r holds the ndst destinations then the nsrc operands, src[i] / depth[i]
 * the operands' tensors and the loop depths they were pushed at. */
static void lnn_plan_compute(const lnn_model *m, uint32_t pc, uint32_t w, const uint16_t *src,
                             const uint8_t *depth, uint32_t loops, lnn_plan_step *s,
                             lnn_plan_ref *r)
{
    const uint32_t op = w & 0xFFu, a = (w >> 8) & 0xFFu, b = w >> 16;
    const lnn_opinfo *info = lnn_opinfo_of(op);
    const uint32_t ndst = info->format == LNN_FMT_DSTN ? a : 1;
    s->pc = pc;
    s->op = (uint8_t)op;
    s->a = (uint8_t)a;
    s->ndst = (uint8_t)ndst;
    s->nsrc = info->pops;
    s->depth = loops;
    s->p[0] = s->p[1] = s->p[2] = 0;
    for (uint32_t j = 0; j < ndst; j++)
        lnn_ref_of(m, b + j, 0, &r[j]);
    lnn_plan_ref *o = r + ndst; /* the operands */
    for (uint32_t i = 0; i < info->pops; i++)
        lnn_ref_of(m, src[i], depth[i], &o[i]);
    if (!lnn_op_linked(op)) /* never: lnn_init refused the op */
        return;

    switch ((lnn_opcode)op) {
    LNN_CASE_BINARY:
        if (lnn_same_count(&o[0], &r[0]) && lnn_same_count(&o[1], &r[0])) {
            s->p[0] = LNN_BC_SAME;
        } else if (!(o[1].kind & LNN_REF_BATCH) && o[1].elems == 1) {
            s->p[0] = LNN_BC_SCALAR_B;
        } else if (!(o[0].kind & LNN_REF_BATCH) && o[0].elems == 1) {
            s->p[0] = LNN_BC_SCALAR_A;
        } else if (lnn_same_count(&o[0], &r[0]) && lnn_is_row(m, src[1], b)) {
            s->p[0] = LNN_BC_ROW_B;
            s->p[1] = o[1].elems;
        } else if (lnn_same_count(&o[1], &r[0]) && lnn_is_row(m, src[0], b)) {
            s->p[0] = LNN_BC_ROW_A;
            s->p[1] = o[0].elems;
        } else {
            s->p[0] = LNN_BC_GENERAL;
        }
        break;
    case LNN_OP_LINEAR:
    case LNN_OP_MATMUL_NT:
    case LNN_OP_LINEAR_Q8:
    case LNN_OP_MATMUL_NTQ8: {
        lnn_tensor wt;
        lnn_tensor_read(m, src[1], &wt);
        s->p[0] = wt.dims[0];
        s->p[1] = wt.dims[1];
        s->p[2] = o[0].elems / wt.dims[1];
        break;
    }
    case LNN_OP_LINEAR_T:
    case LNN_OP_MATMUL_T:
    case LNN_OP_LINEAR_TQ8:
    case LNN_OP_MATMUL_TQ8: {
        lnn_tensor wt;
        lnn_tensor_read(m, src[1], &wt);
        s->p[0] = wt.dims[1];
        s->p[1] = wt.dims[0];
        s->p[2] = o[0].elems / wt.dims[0];
        for (uint32_t j = 0; j < ndst; j++)
            r[j].aux = r[j].elems / s->p[2];
        break;
    }
    case LNN_OP_LINEAR_W8A16:
    case LNN_OP_MATMUL_W8A16: { /* M from scale, K from x (the panel pairs both) */
        lnn_tensor x, scale;
        lnn_tensor_read(m, src[0], &x);
        lnn_tensor_read(m, src[2], &scale);
        s->p[0] = scale.dims[0];
        s->p[1] = x.dims[x.rank - 1];
        s->p[2] = o[0].elems / s->p[1];
        for (uint32_t j = 0; j < ndst; j++)
            r[j].aux = r[j].elems / s->p[2];
        break;
    }
    case LNN_OP_SPLIT: {
        lnn_tensor x;
        lnn_tensor_read(m, src[0], &x);
        s->p[0] = x.dims[x.rank - 1];
        s->p[2] = o[0].elems / s->p[0];
        for (uint32_t j = 0; j < ndst; j++)
            r[j].aux = r[j].elems / s->p[2];
        break;
    }
    case LNN_OP_CONCAT: {
        lnn_tensor d;
        lnn_tensor_read(m, b, &d);
        uint32_t outer = 1;
        for (uint32_t i = 0; i < a; i++)
            outer *= d.dims[i]; /* a batched dim 0 counts 1 (axis > 0) */
        s->p[0] = outer;
        s->p[1] = o[0].elems / outer;
        s->p[2] = o[1].elems / outer;
        break;
    }
    LNN_CASE_EWISE: {
        const uint32_t n = info->pops - 1u;
        const uint8_t *prog = m->consts + o[n].offset;
        s->p[0] = (lnn_rd32(prog) >> 8) & 0xFFu;
        s->p[2] = (lnn_rd32(prog) >> 16) & 0xFFu;
        /* the program's fused form (kernels.h), on the program's reference;
         * only the SIMD sets run fused forms: a scalar-only build plans none */
        o[n].aux = LNN_HAVE_NEON || LNN_HAVE_SSE3 || LNN_HAVE_AVX2 || LNN_HAVE_AVX512 || LNN_HAVE_CM4
                       ? lnn_ew_form((const uint32_t *)(const void *)prog + 1, s->p[0], n)
                       : LNN_EW_FORM_NONE;
        for (uint32_t i = 0; i < n; i++) {
            /* verified: batched means d's shape; unbatched: one value, d's
             * shape (d unbatched, same count) or a row of d */
            if ((o[i].kind & LNN_REF_BATCH) ||
                (!(r[0].kind & LNN_REF_BATCH) && o[i].elems == r[0].elems))
                o[i].aux = LNN_EW_SAME;
            else if (o[i].elems == 1)
                o[i].aux = LNN_EW_SCALAR;
            else {
                o[i].aux = LNN_EW_ROW;
                if (s->p[1] == 0 || o[i].elems < s->p[1])
                    s->p[1] = o[i].elems;
            }
        }
        break;
    }
    case LNN_OP_ZERO:
    case LNN_OP_COPY:
    LNN_CASE_UNARY:
    case LNN_OP_WHERE: /* planned when it runs */
    LNN_CASE_GRAPH: /* the graph ops: planned when they run (graph.c) */
    case LNN_OP_PUSH:
    case LNN_OP_DROP:
    case LNN_OP_LOOP:
    case LNN_OP_END:
    case LNN_OP_LOOPW:
    case LNN_OP_UNTIL:
        break;
    }
}

/* ---- executing one compute step --------------------------------------------- */

/* Element strides of s along the output dims padded to rank 4 (s aligned
 * right); 0 where s broadcasts (its dim is 1) or does not reach. */
static void lnn_bcast_strides(const lnn_rshape *s, size_t out[4])
{
    size_t stride = 1;
    for (uint32_t i = 0; i < 4; i++)
        out[i] = 0;
    for (uint32_t j = s->rank; j-- > 0;) {
        const uint32_t i = 4 - s->rank + j;
        out[i] = s->dims[j] == 1 ? 0 : stride;
        stride *= s->dims[j];
    }
}

static void lnn_exec_binary(const lnn_ctx *c, lnn_binary_fn fn, const lnn_plan_step *s,
                            const lnn_plan_ref *r, float *y, const float *const *x)
{
    lnn_binary_params p;
    p.y = y;
    p.a = x[0];
    p.b = x[1];
    p.n = lnn_ref_count(c, &r[0]);
    p.inner = s->p[1];
    p.mode = (lnn_bcast_mode)s->p[0];
    if (p.mode == LNN_BC_GENERAL) {
        lnn_rshape d, a, b;
        lnn_rshape_of(c->m, r[0].tensor, c->batch, &d);
        lnn_rshape_of(c->m, r[1].tensor, c->batch, &a);
        lnn_rshape_of(c->m, r[2].tensor, c->batch, &b);
        for (uint32_t i = 0; i < 4; i++)
            p.dims[i] = i < 4 - d.rank ? 1 : d.dims[i - (4 - d.rank)];
        lnn_bcast_strides(&a, p.sa);
        lnn_bcast_strides(&b, p.sb);
    }
    fn(&p);
}

static void lnn_exec_ewise(const lnn_ctx *c, const lnn_plan_step *s, const lnn_plan_ref *r,
                           float *y, const float *const *x)
{
    lnn_ewise_params p;
    const size_t n = s->nsrc - 1u;
    p.y = y;
    p.n = n;
    p.ninsn = s->p[0];
    p.nregs = s->p[2];
    p.insn = (const uint32_t *)(const void *)x[n] + 1;
    p.count = lnn_ref_count(c, &r[0]);
    p.inner = s->p[1] ? s->p[1] : p.count;
    p.form = r[1 + n].aux;
    for (size_t i = 0; i < n; i++) {
        p.src[i] = x[i];
        p.mode[i] = (uint8_t)r[1 + i].aux;
        p.len[i] = r[1 + i].elems;
    }
    c->m->kernels->ewise(&p);
}

/* The first column of each destination of a split product (_T forms). */
static void lnn_split_columns(const lnn_plan_step *s, const lnn_plan_ref *r,
                              size_t col[LNN_MAX_DSTS])
{
    size_t cols = 0;
    for (uint32_t j = 0; j < s->ndst; j++) {
        col[j] = cols;
        cols += r[j].aux;
    }
}

/* Rows of x of a product step (or of a of SPLIT) in this run. */
static size_t lnn_product_rows(const lnn_ctx *c, const lnn_plan_step *s, const lnn_plan_ref *x)
{
    return (size_t)s->p[2] * ((x->kind & LNN_REF_BATCH) ? c->batch : 1);
}

/* LINEAR_Q8 .. MATMUL_TQ8: operands x, the int8 weight, scale (, bias). */
static void lnn_exec_q8(const lnn_ctx *c, const lnn_plan_step *s, const lnn_plan_ref *r,
                        float *const *y, const float *const *x)
{
    const lnn_kernels *k = c->m->kernels;
    lnn_linear_q8_params p;
    const int8_t *q = (const int8_t *)(const void *)x[1];
    const float *bias = s->nsrc == 4 ? x[3] : NULL;
    p.x = x[0];
    p.k = s->p[1];
    p.rows = lnn_product_rows(c, s, &r[s->ndst]);
    if (s->op == LNN_OP_LINEAR_Q8 || s->op == LNN_OP_MATMUL_NTQ8) {
        p.y = y[0];
        p.q = q;
        p.scale = x[2];
        p.bias = bias;
        p.m = p.ldy = s->p[0];
        p.ldq = p.k;
        p.reverse = 0;
        k->linear_q8(&p);
        return;
    }
    /* as LINEAR_T: every other iteration of its loop backwards */
    size_t col[LNN_MAX_DSTS];
    lnn_split_columns(s, r, col);
    p.ldq = s->p[0];
    p.reverse = (int)(c->index[s->depth] & 1u);
    for (uint32_t n = 0; n < s->ndst; n++) {
        const uint32_t j = p.reverse ? s->ndst - 1 - n : n;
        p.y = y[j];
        p.m = p.ldy = r[j].aux;
        p.q = q + col[j];
        p.scale = x[2] + col[j];
        p.bias = bias ? bias + col[j] : NULL;
        k->linear_tq8(&p);
    }
}

#ifdef LNN_CHECKED
/* The checked build (-DLNN_CHECKED, make CHECKED=1; the sanitizer and fuzz
 * builds): before every kernel call, each destination and operand range
 * [p, p + count * size) must lie inside its region in this run: the
 * constants, the fixed, batched or state part of the arena, or its input
 * or output buffer. The verifier proves it; this catches a gap in the proof
 * as LNN_E_CHECKED instead of a stray read or write. */
static int lnn_ref_inside(const lnn_ctx *c, const lnn_plan_ref *r, const void *p)
{
    const lnn_model *m = c->m;
    uintptr_t lo, hi;
    size_t size = 4;
    lnn_tensor t;
    switch (r->kind & LNN_REF_REGION) {
    case LNN_REF_CONST:
        lo = (uintptr_t)m->consts;
        hi = lo + m->consts_size;
        size = lnn_dtype_size(lnn_tensor_entry(m, r->tensor)[LNN_T_DTYPE]);
        break;
    case LNN_REF_FIXED:
        lo = (uintptr_t)m->arena;
        hi = lo + m->arena_fixed;
        break;
    case LNN_REF_BATCHED:
        lo = (uintptr_t)(m->arena + m->batch_base);
        hi = lo + (size_t)m->arena_row * c->batch;
        break;
    case LNN_REF_STATE:
        lo = (uintptr_t)(m->arena + c->state_base);
        hi = lo + (size_t)m->state_row * c->batch;
        break;
    case LNN_REF_INPUT:
    case LNN_REF_OUTPUT: {
        const int in = (r->kind & LNN_REF_REGION) == LNN_REF_INPUT;
        if (r->offset >= (in ? m->num_inputs : m->num_outputs))
            return 0;
        lnn_tensor_read(m, in ? m->input_tensor[r->offset] : m->output_tensor[r->offset], &t);
        lo = in ? (uintptr_t)c->in[r->offset] : (uintptr_t)c->out[r->offset];
        hi = lo + 4 * (size_t)lnn_tensor_elems(&t) * ((t.flags & LNN_TF_BATCH) ? c->batch : 1);
        break;
    }
    default:
        return 0;
    }
    const uintptr_t a = (uintptr_t)p;
    return a >= lo && a <= hi && lnn_ref_count(c, r) * size <= hi - a;
}

static int lnn_step_inside(lnn_ctx *c, const lnn_plan_step *s, const lnn_plan_ref *r,
                           float *const *y, const float *const *x)
{
    for (uint32_t j = 0; j < s->ndst; j++)
        if (!lnn_ref_inside(c, &r[j], y[j]))
            return 0;
    for (uint32_t i = 0; i < s->nsrc; i++)
        if (!lnn_ref_inside(c, &r[s->ndst + i], x[i]))
            return 0;
    return 1;
}

/* After a step: stop the run if the checked build refused one. */
#define LNN_CHECKED_STOP(c)                                                    \
    do {                                                                       \
        if ((c)->status != LNN_OK)                                             \
            return (c)->status;                                                \
    } while (0)
#else
#define LNN_CHECKED_STOP(c) ((void)0)
#endif

/* The kernel of ZERO, COPY or a unary op (LNN_CASE_UNARY) in set k. */
static lnn_unary_fn lnn_unary_kernel(const lnn_kernels *k, uint32_t op)
{
    switch (op) {
    case LNN_OP_ZERO:
        return k->zero;
    case LNN_OP_COPY:
        return k->copy;
    case LNN_OP_NEG:
        return k->neg;
    case LNN_OP_EXP:
        return k->exp;
    case LNN_OP_SIGMOID:
        return k->sigmoid;
    case LNN_OP_TANH:
        return k->tanh;
    case LNN_OP_ABS:
        return k->abs;
    case LNN_OP_SQRT:
        return k->sqrt;
    case LNN_OP_LOG:
        return k->log;
    case LNN_OP_ERF:
        return k->erf;
    default: /* RELU */
        return k->relu;
    }
}

/* The kernel of a binary op (LNN_CASE_BINARY) in set k. */
static lnn_binary_fn lnn_binary_kernel(const lnn_kernels *k, uint32_t op)
{
    switch (op) {
    case LNN_OP_ADD:
        return k->add;
    case LNN_OP_SUB:
        return k->sub;
    case LNN_OP_MUL:
        return k->mul;
    case LNN_OP_DIV:
        return k->div;
    case LNN_OP_MIN:
        return k->min;
    case LNN_OP_MAX:
        return k->max;
    case LNN_OP_POW:
        return k->pow;
    case LNN_OP_LE:
        return k->le;
    default: /* LT */
        return k->lt;
    }
}

/* Runs one compute step: r its references (destinations first), y the
 * destinations' addresses, x the operands'. */
static void lnn_exec(lnn_ctx *c, const lnn_plan_step *s, const lnn_plan_ref *r,
                     float *const *y, const float *const *x)
{
    if (!lnn_op_linked(s->op)) /* never: lnn_init refused the op */
        return;
    const lnn_kernels *k = c->m->kernels;
    const lnn_plan_ref *o = r + s->ndst;
#ifdef LNN_CHECKED
    if (!lnn_step_inside(c, s, r, y, x)) {
        c->status = LNN_E_CHECKED;
        return;
    }
#endif
    switch ((lnn_opcode)s->op) {
    case LNN_OP_ZERO:
    case LNN_OP_COPY:
    LNN_CASE_UNARY: {
        lnn_unary_params p;
        p.y = y[0];
        p.x = s->op == LNN_OP_ZERO ? NULL : x[0];
        p.n = lnn_ref_count(c, &r[0]);
        lnn_unary_kernel(k, s->op)(&p);
        break;
    }
    LNN_CASE_BINARY:
        lnn_exec_binary(c, lnn_binary_kernel(k, s->op), s, r, y[0], x);
        break;
    case LNN_OP_WHERE: {
        lnn_where_params p;
        lnn_rshape d, v;
        p.y = y[0];
        p.c = x[0];
        p.a = x[1];
        p.b = x[2];
        lnn_rshape_of(c->m, r[0].tensor, c->batch, &d);
        for (uint32_t i = 0; i < 4; i++)
            p.dims[i] = i < 4 - d.rank ? 1 : d.dims[i - (4 - d.rank)];
        lnn_rshape_of(c->m, r[1].tensor, c->batch, &v);
        lnn_bcast_strides(&v, p.sc);
        lnn_rshape_of(c->m, r[2].tensor, c->batch, &v);
        lnn_bcast_strides(&v, p.sa);
        lnn_rshape_of(c->m, r[3].tensor, c->batch, &v);
        lnn_bcast_strides(&v, p.sb);
        k->where(&p);
        break;
    }
    case LNN_OP_LINEAR:
    case LNN_OP_MATMUL_NT: {
        lnn_linear_params p;
        p.y = y[0];
        p.x = x[0];
        p.w = x[1];
        p.bias = s->op == LNN_OP_LINEAR ? x[2] : NULL;
        p.m = s->p[0];
        p.k = s->p[1];
        p.rows = lnn_product_rows(c, s, &o[0]);
        k->linear(&p);
        break;
    }
    case LNN_OP_LINEAR_T:
    case LNN_OP_MATMUL_T: {
        lnn_linear_t_params p;
        const float *bias = s->op == LNN_OP_LINEAR_T ? x[2] : NULL;
        p.x = x[0];
        p.k = s->p[1];
        p.ldw = s->p[0];
        p.rows = lnn_product_rows(c, s, &o[0]);
        /* every other iteration of its loop backwards: the parts in reverse
         * order, each summed from the last row of the weight (kernels.h) */
        p.reverse = (int)(c->index[s->depth] & 1u);
        size_t col[LNN_MAX_DSTS];
        lnn_split_columns(s, r, col);
        int adjacent = p.rows == 1; /* one row whose parts follow each other */
        for (uint32_t j = 1; j < s->ndst; j++)
            adjacent &= y[j - 1] + r[j - 1].aux == y[j];
        if (adjacent) { /* one call for all columns: the same sums */
            p.y = y[0];
            p.m = p.ldy = col[s->ndst - 1] + r[s->ndst - 1].aux;
            p.w = x[1];
            p.bias = bias;
            k->linear_t(&p);
            break;
        }
        for (uint32_t n = 0; n < s->ndst; n++) {
            const uint32_t j = p.reverse ? s->ndst - 1 - n : n;
            p.y = y[j];
            p.m = p.ldy = r[j].aux;
            p.w = x[1] + col[j];
            p.bias = bias ? bias + col[j] : NULL;
            k->linear_t(&p);
        }
        break;
    }
    case LNN_OP_LINEAR_Q8:
    case LNN_OP_MATMUL_NTQ8:
    case LNN_OP_LINEAR_TQ8:
    case LNN_OP_MATMUL_TQ8:
        lnn_exec_q8(c, s, r, y, x);
        break;
    case LNN_OP_LINEAR_W8A16:
    case LNN_OP_MATMUL_W8A16: {
        /* one call for every destination: the panel pairs columns, so a
         * destination may begin in the middle of a pair */
        lnn_linear_w8a16_params p;
        p.x = x[0];
        p.panel = (const uint8_t *)(const void *)x[1];
        p.scale = x[2];
        p.bias = s->nsrc == 4 ? x[3] : NULL;
        p.m = s->p[0];
        p.k = s->p[1];
        p.rows = lnn_product_rows(c, s, &o[0]);
        p.ndst = s->ndst;
        p.col[0] = 0;
        for (uint32_t j = 0; j < s->ndst; j++) {
            p.y[j] = y[j];
            p.col[j + 1] = p.col[j] + r[j].aux;
        }
        k->linear_w8a16(&p);
        break;
    }
    case LNN_OP_SPLIT: {
        lnn_split_params p;
        p.x = x[0];
        p.rows = lnn_product_rows(c, s, &o[0]);
        p.n = s->ndst;
        for (uint32_t j = 0; j < s->ndst; j++) {
            p.y[j] = y[j];
            p.cols[j] = r[j].aux;
        }
        k->split(&p);
        break;
    }
    case LNN_OP_CONCAT: {
        lnn_concat_params p;
        p.y = y[0];
        p.a = x[0];
        p.b = x[1];
        p.outer = (size_t)s->p[0] * ((r[0].kind & LNN_REF_BATCH) ? c->batch : 1);
        p.na = s->p[1];
        p.nb = s->p[2];
        k->concat(&p);
        break;
    }
    LNN_CASE_EWISE:
        lnn_exec_ewise(c, s, r, y[0], x);
        break;
    LNN_CASE_GRAPH: /* the graph ops: graph.c */
    {
        uint16_t src[LNN_MAX_POPS];
        for (uint32_t i = 0; i < s->nsrc; i++)
            src[i] = o[i].tensor;
        lnn_graph_exec(c->m, s->op, s->a, r[0].tensor, src, c->batch, y[0], x);
        break;
    }
    case LNN_OP_PUSH:
    case LNN_OP_DROP:
    case LNN_OP_LOOP:
    case LNN_OP_END:
    case LNN_OP_LOOPW:
    case LNN_OP_UNTIL:
        break; /* not compute steps */
    }
    if (c->m->trace)
        for (uint32_t j = 0; j < s->ndst; j++)
            c->m->trace(c->m->trace_ctx, s->pc, r[j].tensor, y[j],
                        (uint32_t)lnn_ref_count(c, &r[j]));
}

/* ---- the plan ----------------------------------------------------------------- */

void lnn_plan_build(lnn_model *m)
{
    struct {
        uint16_t t;
        uint8_t depth;
    } stack[LNN_MAX_STACK];
    uint32_t sp = 0, depth = 0, nsteps = 0, nrefs = 0;
    uint32_t loop_step[LNN_MAX_LOOP_DEPTH];
    m->plan_steps = 0;
    m->plan_refs = 0;
    m->use_plan = 0;
    for (uint32_t pc = 0; pc < m->code_words; pc++) {
        const uint32_t w = lnn_rd32(m->code + 4 * (size_t)pc);
        const uint32_t op = w & 0xFFu, a = (w >> 8) & 0xFFu, b = w >> 16;
        const lnn_opinfo *info = lnn_opinfo_of(op);
        if (op == LNN_OP_PUSH) {
            stack[sp].t = (uint16_t)b;
            stack[sp].depth = (uint8_t)depth;
            sp++;
            continue;
        }
        if (op == LNN_OP_DROP) {
            sp--;
            continue;
        }
        if (nsteps == LNN_PLAN_STEPS)
            return; /* too large: no plan */
        lnn_plan_step *s = &m->step[nsteps];
        s->pc = pc;
        s->op = (uint8_t)op;
        s->a = 0;
        s->ndst = s->nsrc = 0;
        s->ref = nrefs;
        if (op == LNN_OP_LOOP || op == LNN_OP_LOOPW) {
            s->p[0] = b;
            loop_step[depth++] = nsteps++;
            continue;
        }
        /* LOOPW / UNTIL code only where a model uses them (LNN_OP_LINKED: a
         * compile-time 0 in a selective build without them) */
        if (LNN_OP_LINKED(UNTIL) && op == LNN_OP_UNTIL) { /* one operand reference: the flag */
            if (nrefs + 1 > LNN_PLAN_REFS)
                return;
            sp--;
            lnn_ref_of(m, stack[sp].t, stack[sp].depth, &m->ref[nrefs]);
            s->depth = depth;
            s->nsrc = 1;
            nrefs++;
            nsteps++;
            continue;
        }
        if (op == LNN_OP_END) {
            s->p[0] = loop_step[--depth] + 1; /* the body's first step */
            nsteps++;
            continue;
        }
        const uint32_t ndst = info->format == LNN_FMT_DSTN ? a : 1;
        if (nrefs + ndst + info->pops > LNN_PLAN_REFS)
            return;
        uint16_t src[LNN_MAX_POPS];
        uint8_t dep[LNN_MAX_POPS];
        sp -= info->pops;
        for (uint32_t i = 0; i < info->pops; i++) {
            src[i] = stack[sp + i].t;
            dep[i] = stack[sp + i].depth;
        }
        lnn_plan_compute(m, pc, w, src, dep, depth, s, &m->ref[nrefs]);
        s->ref = nrefs;
        nrefs += ndst + info->pops;
        nsteps++;
        stack[sp].t = (uint16_t)b;
        stack[sp].depth = (uint8_t)depth;
        sp++;
    }
    m->plan_steps = nsteps;
    m->plan_refs = nrefs;
    m->use_plan = nsteps > 0;
    /* the addresses no run changes: constants and unbatched arena tensors */
    lnn_ctx c;
    c.m = m;
    c.batch = 1;
    for (uint32_t i = 0; i < nrefs; i++)
        if (!lnn_ref_varies(&m->ref[i]))
            m->ptr[i] = (float *)(void *)lnn_ref_base(&c, &m->ref[i]);
}

int lnn_use_plan(lnn_model *m, int on)
{
    if (!m || m->ready != LNN_READY_MAGIC)
        return 0;
    m->use_plan = (on || LNN_PLAN_ONLY) && m->plan_steps > 0;
    return (int)m->use_plan;
}

/* 1 if every element of the flag x (r's count in this run) is nonzero: UNTIL
 * ends its LOOPW. */
static int lnn_until(const lnn_ctx *c, const lnn_plan_ref *r, const float *x)
{
    const size_t n = lnn_ref_count(c, r);
    for (size_t i = 0; i < n; i++)
        if (x[i] == 0.0f)
            return 0;
    return 1;
}

static lnn_status lnn_run_plan(lnn_ctx *c, lnn_model *m)
{
    for (uint32_t i = 0; i < m->plan_refs; i++) /* the others: lnn_plan_build */
        if (lnn_ref_varies(&m->ref[i]))
            m->ptr[i] = (float *)(void *)lnn_ref_base(c, &m->ref[i]);
    struct {
        uint32_t body, count, until;
    } loops[LNN_MAX_LOOP_DEPTH];
    uint32_t nl = 0;
    const uint32_t nsteps = m->plan_steps;
    for (uint32_t si = 0; si < nsteps;) {
        const lnn_plan_step *s = &m->step[si];
        LNN_PROFILE_MARK(m, s->pc);
        if (s->op == LNN_OP_LOOP || s->op == LNN_OP_LOOPW) {
            loops[nl].body = si + 1;
            loops[nl].count = s->p[0];
            loops[nl].until = LNN_OP_LINKED(LOOPW) && s->op == LNN_OP_LOOPW;
            c->index[++nl] = 0;
            si++;
            continue;
        }
        if (s->op == LNN_OP_END) {
            if (++c->index[nl] < loops[nl - 1].count)
                si = loops[nl - 1].body;
            else if (loops[nl - 1].until)
                return LNN_E_STEPS; /* its UNTIL never ended it */
            else {
                nl--;
                si++;
            }
            continue;
        }
        if (LNN_OP_LINKED(UNTIL) && s->op == LNN_OP_UNTIL) { /* verified: the next step is its END */
            const lnn_plan_ref *r = &m->ref[s->ref];
            const float *x = (const float *)(const void *)((const uint8_t *)m->ptr[s->ref] +
                                                           (size_t)lnn_stride_bytes(
                                                               r->stride, c->index[r->depth]));
            if (lnn_until(c, r, x)) {
                nl--;
                si += 2;
            } else {
                si++;
            }
            continue;
        }
        /* destinations: their base addresses as they are; operands: a
         * loop-strided constant at the row of the iteration it was pushed in,
         * which is this one (verify.c) */
        const float *x[LNN_MAX_POPS];
        const lnn_plan_ref *r = &m->ref[s->ref];
        float *const *base = &m->ptr[s->ref];
        for (uint32_t i = 0, j = s->ndst; i < s->nsrc; i++, j++)
            x[i] = (const float *)(const void *)((const uint8_t *)base[j] +
                                                 (size_t)lnn_stride_bytes(
                                                     r[j].stride, c->index[r[j].depth]));
        lnn_exec(c, s, r, base, x);
        LNN_CHECKED_STOP(c);
        si++;
    }
    return LNN_OK;
}

/* ---- the instruction interpreter (models without a plan) ------------------- */

static lnn_status lnn_run_code(lnn_ctx *c, const lnn_model *m)
{
    const uint8_t *code = m->code;
    const uint32_t ncode = m->code_words;
    struct {
        const float *p;
        uint16_t t;
        uint8_t depth;
    } stack[LNN_MAX_STACK];
    uint32_t sp = 0;
    struct {
        uint32_t body, count, until;
    } loops[LNN_MAX_LOOP_DEPTH];
    uint32_t nl = 0;
    for (uint32_t pc = 0; pc < ncode;) {
        const uint32_t w = lnn_rd32(code + 4 * (size_t)pc);
        const uint32_t op = w & 0xFFu, b = w >> 16;
        LNN_PROFILE_MARK(m, pc);
        switch (op) {
        case LNN_OP_PUSH: {
            lnn_plan_ref r;
            lnn_ref_of(m, b, nl, &r);
            stack[sp].p = (const float *)(const void *)(lnn_ref_base(c, &r) +
                                                        (size_t)lnn_stride_bytes(r.stride,
                                                                                 c->index[nl]));
            stack[sp].t = (uint16_t)b;
            stack[sp].depth = (uint8_t)nl;
            sp++;
            pc++;
            continue;
        }
        case LNN_OP_DROP:
            sp--;
            pc++;
            continue;
        case LNN_OP_LOOP:
        case LNN_OP_LOOPW:
            loops[nl].body = pc + 1;
            loops[nl].count = b;
            loops[nl].until = LNN_OP_LINKED(LOOPW) && op == LNN_OP_LOOPW;
            c->index[++nl] = 0;
            pc++;
            continue;
        case LNN_OP_END:
            if (++c->index[nl] < loops[nl - 1].count)
                pc = loops[nl - 1].body;
            else if (loops[nl - 1].until)
                return LNN_E_STEPS; /* its UNTIL never ended it */
            else {
                nl--;
                pc++;
            }
            continue;
        case LNN_OP_UNTIL: { /* verified: the next instruction is its END */
            if (!LNN_OP_LINKED(UNTIL))
                break; /* not reached: lnn_init refuses an op the build has not linked */
            lnn_plan_ref r;
            sp--;
            lnn_ref_of(m, stack[sp].t, stack[sp].depth, &r);
            if (lnn_until(c, &r, stack[sp].p)) {
                nl--;
                pc += 2;
            } else {
                pc++;
            }
            continue;
        }
        default:
            break;
        }
        const lnn_opinfo *info = lnn_opinfo_of(op);
        lnn_plan_step s;
        lnn_plan_ref r[LNN_MAX_DSTS + LNN_MAX_POPS];
        uint16_t src[LNN_MAX_POPS];
        uint8_t dep[LNN_MAX_POPS];
        const float *x[LNN_MAX_POPS];
        float *y[LNN_MAX_DSTS];
        sp -= info->pops;
        for (uint32_t i = 0; i < info->pops; i++) {
            src[i] = stack[sp + i].t;
            dep[i] = stack[sp + i].depth;
            x[i] = stack[sp + i].p;
        }
        lnn_plan_compute(m, pc, w, src, dep, nl, &s, r);
        for (uint32_t j = 0; j < s.ndst; j++)
            y[j] = (float *)(void *)lnn_ref_base(c, &r[j]);
        lnn_exec(c, &s, r, y, x);
        LNN_CHECKED_STOP(c);
        stack[sp].p = y[0];
        stack[sp].t = (uint16_t)b;
        stack[sp].depth = (uint8_t)nl;
        sp++;
        pc++;
    }
    return LNN_OK;
}

/* A run starts from zero state after lnn_init or lnn_reset (state_batch 0)
 * and when its batch differs from the previous run's: the rows of the state
 * left would belong to other streams. batch <= max_batch: the state part
 * lies inside the arena. */
static void lnn_state_prepare(lnn_model *m, const lnn_ctx *c)
{
    if (m->state_row == 0 || m->state_batch == c->batch)
        return;
    memset(m->arena + c->state_base, 0, (size_t)m->state_row * c->batch);
    m->state_batch = (uint32_t)c->batch;
}

lnn_status lnn_run(lnn_model *m, const float *const *inputs,
                   float *const *outputs, uint32_t batch)
{
    if (!m)
        return LNN_E_ARG;
    if (m->ready != LNN_READY_MAGIC)
        return LNN_E_NOT_READY;
    if (batch == 0 || batch > m->max_batch)
        return LNN_E_BATCH;
    if (!inputs || !outputs)
        return LNN_E_ARG;
    for (uint32_t i = 0; i < m->num_inputs; i++)
        if (!inputs[i] || (uintptr_t)inputs[i] % 4 != 0)
            return LNN_E_ARG;
    for (uint32_t i = 0; i < m->num_outputs; i++)
        if (!outputs[i] || (uintptr_t)outputs[i] % 4 != 0)
            return LNN_E_ARG;

    lnn_ctx ctx;
    ctx.m = m;
    ctx.in = inputs;
    ctx.out = outputs;
    ctx.batch = batch;
    ctx.state_base = (size_t)lnn_state_base(m->batch_base, m->arena_row, batch);
    ctx.index[0] = 0;
#ifdef LNN_CHECKED
    ctx.status = LNN_OK;
#endif
    lnn_state_prepare(m, &ctx);
    const lnn_status st = m->use_plan || LNN_PLAN_ONLY ? lnn_run_plan(&ctx, m) : lnn_run_code(&ctx, m);
    LNN_PROFILE_MARK(m, LNN_PROFILE_NONE); /* the last step's time ends here */
    return st;
}
