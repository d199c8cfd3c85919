/*
 * interp.c - lnn_run: the interpreter of verified code.
 *
 * No check in the dispatch loop: lnn_init proved that every opcode is
 * valid, every tensor index in range, the stack never under- or overflows,
 * loops are balanced and every address formed below lies inside its region
 * for any batch <= max_batch. The loop only decodes, forms addresses, plans
 * the kernel call (shapes with the run's batch) and calls through the kernel
 * table chosen at lnn_init.
 */
#include "internal.h"
#include "kernels.h"

/* Everything an address depends on during one run. */
typedef struct {
    const lnn_model *m;
    const float *const *in;
    float *const *out;
    size_t batch;
} lnn_ctx;

/* A stack slot: the data pointer and the tensor it belongs to. */
typedef struct {
    const float *p;
    uint32_t t;
} lnn_slot;

/* Shape of tensor t in this run: batch substituted for a batched dim 0. */
typedef struct {
    uint32_t rank;
    size_t dims[LNN_MAX_RANK];
    size_t count;
} lnn_rshape;

static void lnn_rshape_of(const lnn_ctx *c, uint32_t t, lnn_rshape *s)
{
    const uint8_t *e = lnn_tensor_entry(c->m, t);
    s->rank = e[LNN_T_RANK];
    s->count = 1;
    for (uint32_t i = 0; i < s->rank; i++) {
        size_t d = lnn_rd32(e + LNN_T_DIMS + 4 * i);
        if (i == 0 && (e[LNN_T_FLAGS] & LNN_TF_BATCH))
            d = c->batch;
        s->dims[i] = d;
        s->count *= d;
    }
}

/* Address of a writable tensor (ARENA or OUTPUT). */
static float *lnn_dst(const lnn_ctx *c, uint32_t t)
{
    const uint8_t *e = lnn_tensor_entry(c->m, t);
    const uint32_t off = lnn_rd32(e + LNN_T_OFFSET);
    if (e[LNN_T_REGION] == LNN_REG_OUTPUT)
        return c->out[off];
    if (e[LNN_T_FLAGS] & LNN_TF_BATCH)
        return (float *)(void *)(c->m->arena + c->m->batch_base +
                                 (size_t)off * c->batch);
    return (float *)(void *)(c->m->arena + off);
}

/* Address of any tensor; step = index of the innermost loop iteration. */
static const float *lnn_src(const lnn_ctx *c, uint32_t t, uint32_t step)
{
    const uint8_t *e = lnn_tensor_entry(c->m, t);
    const uint32_t off = lnn_rd32(e + LNN_T_OFFSET);
    switch (e[LNN_T_REGION]) {
    case LNN_REG_CONST:
        return (const float *)(const void *)(c->m->consts + off +
                                             (size_t)lnn_rd32(e + LNN_T_STRIDE) * step);
    case LNN_REG_INPUT:
        return c->in[off];
    default:
        return lnn_dst(c, t);
    }
}

static void lnn_exec_linear(const lnn_ctx *c, lnn_linear_fn fn, float *y,
                            const lnn_slot *ops, int has_bias)
{
    lnn_rshape x, w;
    lnn_rshape_of(c, ops[0].t, &x);
    lnn_rshape_of(c, ops[1].t, &w);
    lnn_linear_params p;
    p.y = y;
    p.x = ops[0].p;
    p.w = ops[1].p;
    p.bias = has_bias ? ops[2].p : NULL;
    p.m = w.dims[0];
    p.k = w.dims[1];
    p.rows = x.count / p.k;
    fn(&p);
}

/* s is a row of d: s aligned right to d is [1, ..., 1, d[j], ..., d[r-1]]. */
static int lnn_is_row(const lnn_rshape *s, const lnn_rshape *d)
{
    const uint32_t pad = d->rank - s->rank;
    uint32_t j = 0;
    while (j < s->rank && s->dims[j] == 1)
        j++;
    for (; j < s->rank; j++)
        if (s->dims[j] != d->dims[pad + j])
            return 0;
    return 1;
}

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

static void lnn_exec_binary(const lnn_ctx *c, lnn_binary_fn fn, float *y,
                            uint32_t dst, const lnn_slot *ops)
{
    lnn_rshape d, a, b;
    lnn_rshape_of(c, dst, &d);
    lnn_rshape_of(c, ops[0].t, &a);
    lnn_rshape_of(c, ops[1].t, &b);
    lnn_binary_params p;
    p.y = y;
    p.a = ops[0].p;
    p.b = ops[1].p;
    p.n = d.count;
    p.inner = 0;
    if (a.count == d.count && b.count == d.count) {
        p.mode = LNN_BC_SAME; /* equal counts imply equal aligned dims */
    } else if (b.count == 1) {
        p.mode = LNN_BC_SCALAR_B;
    } else if (a.count == 1) {
        p.mode = LNN_BC_SCALAR_A;
    } else if (a.count == d.count && lnn_is_row(&b, &d)) {
        p.mode = LNN_BC_ROW_B;
        p.inner = b.count;
    } else if (b.count == d.count && lnn_is_row(&a, &d)) {
        p.mode = LNN_BC_ROW_A;
        p.inner = a.count;
    } else {
        p.mode = LNN_BC_GENERAL;
        for (uint32_t i = 0; i < 4; i++)
            p.dims[i] = i < 4 - d.rank ? 1 : d.dims[i - (4 - d.rank)];
        lnn_bcast_strides(&a, p.sa);
        lnn_bcast_strides(&b, p.sb);
    }
    fn(&p);
}

static void lnn_exec_concat(const lnn_ctx *c, lnn_concat_fn fn, float *y,
                            uint32_t axis, uint32_t dst, const lnn_slot *ops)
{
    lnn_rshape d, a, b;
    lnn_rshape_of(c, dst, &d);
    lnn_rshape_of(c, ops[0].t, &a);
    lnn_rshape_of(c, ops[1].t, &b);
    lnn_concat_params p;
    p.y = y;
    p.a = ops[0].p;
    p.b = ops[1].p;
    p.outer = 1;
    for (uint32_t i = 0; i < axis; i++)
        p.outer *= d.dims[i];
    p.na = a.count / p.outer;
    p.nb = b.count / p.outer;
    fn(&p);
}

static size_t lnn_count(const lnn_ctx *c, uint32_t t)
{
    lnn_rshape s;
    lnn_rshape_of(c, t, &s);
    return s.count;
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

    const lnn_ctx ctx = {m, inputs, outputs, batch};
    const lnn_ctx *c = &ctx;
    const lnn_kernels *k = m->kernels;
    const lnn_trace_fn trace = m->trace;
    const uint8_t *code = m->code;
    const uint32_t ncode = m->code_words;
    lnn_slot stack[LNN_MAX_STACK];
    uint32_t sp = 0;
    struct {
        uint32_t body, count, index;
    } loops[LNN_MAX_LOOP_DEPTH];
    uint32_t nl = 0;

/* Decode helpers and stack shorthands, local to the dispatch loop. */
#define LNN_W_OP(w) ((w) & 0xFFu)
#define LNN_W_A(w) (((w) >> 8) & 0xFFu)
#define LNN_W_B(w) ((w) >> 16)
#define LNN_OPERANDS(n) (stack + sp - (n)) /* the n operands, push order */
/* Pushes the result; with a trace hook, reports it (one branch per op). */
#define LNN_RESULT(n, y)                                                   \
    do {                                                                   \
        sp -= (n);                                                         \
        stack[sp].p = (y);                                                 \
        stack[sp].t = b;                                                   \
        sp++;                                                              \
        if (trace)                                                         \
            trace(m->trace_ctx, pc - 1, b, (y), (uint32_t)lnn_count(c, b)); \
    } while (0)
#define LNN_UNARY(fn)                              \
    do {                                           \
        lnn_unary_params up_;                      \
        up_.y = lnn_dst(c, b);                     \
        up_.x = LNN_OPERANDS(1)[0].p;              \
        up_.n = lnn_count(c, b);                   \
        k->fn(&up_);                               \
        LNN_RESULT(1, up_.y);                      \
    } while (0)
#define LNN_BINARY(fn)                                         \
    do {                                                       \
        float *y_ = lnn_dst(c, b);                             \
        lnn_exec_binary(c, k->fn, y_, b, LNN_OPERANDS(2));     \
        LNN_RESULT(2, y_);                                     \
    } while (0)

    for (uint32_t pc = 0; pc < ncode;) {
        const uint32_t w = lnn_rd32(code + 4 * (size_t)pc);
        const uint32_t b = LNN_W_B(w);
        pc++;
        switch ((lnn_opcode)LNN_W_OP(w)) {
        case LNN_OP_PUSH:
            stack[sp].p = lnn_src(c, b, nl ? loops[nl - 1].index : 0);
            stack[sp].t = b;
            sp++;
            break;
        case LNN_OP_DROP:
            sp--;
            break;
        case LNN_OP_LOOP:
            loops[nl].body = pc;
            loops[nl].count = b;
            loops[nl].index = 0;
            nl++;
            break;
        case LNN_OP_END:
            if (++loops[nl - 1].index < loops[nl - 1].count)
                pc = loops[nl - 1].body;
            else
                nl--;
            break;
        case LNN_OP_ZERO: {
            lnn_unary_params p;
            p.y = lnn_dst(c, b);
            p.x = NULL;
            p.n = lnn_count(c, b);
            k->zero(&p);
            LNN_RESULT(0, p.y);
            break;
        }
        case LNN_OP_COPY:
            LNN_UNARY(copy);
            break;
        case LNN_OP_LINEAR: {
            float *y = lnn_dst(c, b);
            lnn_exec_linear(c, k->linear, y, LNN_OPERANDS(3), 1);
            LNN_RESULT(3, y);
            break;
        }
        case LNN_OP_MATMUL_NT: {
            float *y = lnn_dst(c, b);
            lnn_exec_linear(c, k->linear, y, LNN_OPERANDS(2), 0);
            LNN_RESULT(2, y);
            break;
        }
        case LNN_OP_ADD:
            LNN_BINARY(add);
            break;
        case LNN_OP_SUB:
            LNN_BINARY(sub);
            break;
        case LNN_OP_MUL:
            LNN_BINARY(mul);
            break;
        case LNN_OP_DIV:
            LNN_BINARY(div);
            break;
        case LNN_OP_NEG:
            LNN_UNARY(neg);
            break;
        case LNN_OP_EXP:
            LNN_UNARY(exp);
            break;
        case LNN_OP_SIGMOID:
            LNN_UNARY(sigmoid);
            break;
        case LNN_OP_TANH:
            LNN_UNARY(tanh);
            break;
        case LNN_OP_RELU:
            LNN_UNARY(relu);
            break;
        case LNN_OP_CONCAT: {
            float *y = lnn_dst(c, b);
            lnn_exec_concat(c, k->concat, y, LNN_W_A(w), b, LNN_OPERANDS(2));
            LNN_RESULT(2, y);
            break;
        }
        }
    }
#undef LNN_W_OP
#undef LNN_W_A
#undef LNN_W_B
#undef LNN_OPERANDS
#undef LNN_RESULT
#undef LNN_UNARY
#undef LNN_BINARY
    return LNN_OK;
}
