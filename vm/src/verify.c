/*
 * verify.c - abstract interpretation of the code.
 *
 * Runs the program once over a fixed-size stack of tensor indices (no
 * allocation) and checks, instruction by instruction: opcode, operand
 * fields, stack depth, LOOP/END structure, loop strides, dtypes, writable
 * destination, the shape rule of the op, and aliasing. One pass is exact
 * because a loop body must leave the stack holding the same tensors it
 * found (checked at END), so every iteration starts from the verified
 * state. A program that passes can be interpreted with no check at all:
 * every address it forms lies inside its region for any batch size the
 * arena holds.
 *
 * Shapes carry a batched flag: dim 0 of a batched tensor is the symbolic
 * batch size B (stored as 1), distinct from every concrete dim, including 1.
 */
#include "internal.h"

#define LNN_VFAIL(st) return lnn_fail(m, LNN_##st, off)

/* lnn_check_compute holds at most 3 operands and pushes one result. */
#define OP(name, code, format, pops, pushes, meaning)                      \
    _Static_assert((pops) <= 3 && (pushes) <= 1, "op " #name " pops more " \
                                                 "than 3 or pushes more than 1");
#include "lnn_opcodes.def"
#undef OP

/* A tensor as the verifier sees it: shape, region and byte range. */
typedef struct {
    lnn_tensor e;
    uint32_t batched;
    uint32_t elems; /* per batch row if batched */
    uint32_t bytes;
} lnn_vtensor;

static void lnn_vtensor_read(const lnn_model *m, uint32_t t, lnn_vtensor *v)
{
    lnn_tensor_read(m, t, &v->e);
    v->batched = (v->e.flags & LNN_TF_BATCH) != 0;
    v->elems = lnn_tensor_elems(&v->e);
    v->bytes = v->elems * 4u;
}

/* ---- shapes ---------------------------------------------------------------- */

/* Dim i of v aligned to the right in rank r (i < r): a concrete value, or
 * the batch symbol. Dims left of v's rank are a concrete 1. */
typedef struct {
    uint32_t value;
    int batch;
} lnn_vdim;

static lnn_vdim lnn_dim_aligned(const lnn_vtensor *v, uint32_t r, uint32_t i)
{
    lnn_vdim d = {1, 0};
    const uint32_t pad = r - v->e.rank;
    if (i >= pad) {
        const uint32_t j = i - pad;
        d.value = v->e.dims[j];
        d.batch = v->batched && j == 0;
    }
    return d;
}

static int lnn_same_shape(const lnn_vtensor *a, const lnn_vtensor *b)
{
    if (a->e.rank != b->e.rank || a->batched != b->batched)
        return 0;
    for (uint32_t i = 0; i < a->e.rank; i++)
        if (a->e.dims[i] != b->e.dims[i])
            return 0;
    return 1;
}

/* numpy broadcasting of a and b, with the batch symbol; the result must be
 * exactly d (rank, dims, batch position). */
static int lnn_broadcast_ok(const lnn_vtensor *a, const lnn_vtensor *b,
                            const lnn_vtensor *d)
{
    const uint32_t r = a->e.rank > b->e.rank ? a->e.rank : b->e.rank;
    if (d->e.rank != r)
        return 0;
    for (uint32_t i = 0; i < r; i++) {
        const lnn_vdim x = lnn_dim_aligned(a, r, i), y = lnn_dim_aligned(b, r, i);
        lnn_vdim z;
        if (x.batch && y.batch)
            z = x;
        else if (x.batch || y.batch) {
            const lnn_vdim c = x.batch ? y : x; /* the concrete one */
            if (c.value != 1)
                return 0;
            z = x.batch ? x : y;
        } else if (x.value == y.value || y.value == 1)
            z = x;
        else if (x.value == 1)
            z = y;
        else
            return 0;
        const lnn_vdim w = lnn_dim_aligned(d, r, i);
        if (z.batch != w.batch || (!z.batch && z.value != w.value))
            return 0;
    }
    return 1;
}

/* x (..., K), W (M, K), bias (M) or none -> d = x's shape with last dim M. */
static int lnn_linear_ok(const lnn_vtensor *x, const lnn_vtensor *w,
                         const lnn_vtensor *bias, const lnn_vtensor *d)
{
    const uint32_t r = x->e.rank;
    if (r == 0 || (x->batched && r == 1)) /* K must be concrete */
        return 0;
    if (w->e.rank != 2 || w->batched)
        return 0;
    const uint32_t mm = w->e.dims[0], k = w->e.dims[1];
    if (x->e.dims[r - 1] != k)
        return 0;
    if (bias && (bias->e.rank != 1 || bias->batched || bias->e.dims[0] != mm))
        return 0;
    if (d->e.rank != r || d->batched != x->batched)
        return 0;
    for (uint32_t i = 0; i + 1 < r; i++)
        if (d->e.dims[i] != x->e.dims[i])
            return 0;
    return d->e.dims[r - 1] == mm;
}

static int lnn_concat_ok(uint32_t axis, const lnn_vtensor *a,
                         const lnn_vtensor *b, const lnn_vtensor *d)
{
    const uint32_t r = d->e.rank; /* axis < r: checked with the operands */
    if (a->e.rank != r || b->e.rank != r)
        return 0;
    if (a->batched != d->batched || b->batched != d->batched)
        return 0;
    if (d->batched && axis == 0)
        return 0;
    for (uint32_t i = 0; i < r; i++) {
        if (i == axis) {
            if ((uint64_t)a->e.dims[i] + b->e.dims[i] != d->e.dims[i])
                return 0;
        } else if (a->e.dims[i] != d->e.dims[i] || b->e.dims[i] != d->e.dims[i])
            return 0;
    }
    return 1;
}

/* ---- aliasing -------------------------------------------------------------- */

/* Byte range of a tensor in its memory space. Spaces: the constants, the
 * fixed arena, the batched arena (in per-row units: a batched tensor at
 * offset o with row size s covers [o*B, (o+s)*B), so two of them overlap for
 * some B iff [o, o+s) ranges overlap), and each input and output buffer. */
typedef struct {
    uint32_t space;
    uint64_t lo, hi;
} lnn_range;

static lnn_range lnn_range_of(const lnn_vtensor *v)
{
    lnn_range r;
    r.lo = v->e.offset;
    switch (v->e.region) {
    case LNN_REG_CONST:
        r.space = 0;
        break;
    case LNN_REG_ARENA:
        r.space = v->batched ? 2 : 1;
        break;
    case LNN_REG_INPUT:
        r.space = 3 + v->e.offset;
        r.lo = 0;
        break;
    default:
        r.space = 3 + LNN_MAX_IO + v->e.offset;
        r.lo = 0;
        break;
    }
    r.hi = r.lo + v->bytes;
    return r;
}

static int lnn_overlap(lnn_range a, lnn_range b)
{
    return a.space == b.space && a.lo < b.hi && b.lo < a.hi;
}

static int lnn_identical(lnn_range a, lnn_range b)
{
    return a.space == b.space && a.lo == b.lo && a.hi == b.hi;
}

/* ---- one compute instruction ------------------------------------------------ */

/* ops[0..n) are the operands in push order; dst is tensor index B. */
static lnn_status lnn_check_compute(lnn_model *m, lnn_opcode op, uint32_t axis,
                                    uint32_t dst, const uint16_t *ops,
                                    uint32_t n)
{
    lnn_vtensor d, v[3];
    lnn_vtensor_read(m, dst, &d);
    for (uint32_t i = 0; i < n; i++)
        lnn_vtensor_read(m, ops[i], &v[i]);

    if (d.e.dtype != LNN_DT_F32)
        return LNN_E_DTYPE;
    for (uint32_t i = 0; i < n; i++)
        if (v[i].e.dtype != LNN_DT_F32)
            return LNN_E_DTYPE;
    if (d.e.region != LNN_REG_ARENA && d.e.region != LNN_REG_OUTPUT)
        return LNN_E_READONLY;

    int shape_ok = 1, may_alias = 1;
    switch (op) {
    case LNN_OP_ZERO:
        break;
    case LNN_OP_COPY:
        shape_ok = v[0].batched == d.batched && v[0].elems == d.elems;
        break;
    case LNN_OP_LINEAR:
        shape_ok = lnn_linear_ok(&v[0], &v[1], &v[2], &d);
        may_alias = 0;
        break;
    case LNN_OP_MATMUL_NT:
        shape_ok = lnn_linear_ok(&v[0], &v[1], NULL, &d);
        may_alias = 0;
        break;
    case LNN_OP_ADD:
    case LNN_OP_SUB:
    case LNN_OP_MUL:
    case LNN_OP_DIV:
        shape_ok = lnn_broadcast_ok(&v[0], &v[1], &d);
        break;
    case LNN_OP_NEG:
    case LNN_OP_EXP:
    case LNN_OP_SIGMOID:
    case LNN_OP_TANH:
    case LNN_OP_RELU:
        shape_ok = lnn_same_shape(&v[0], &d);
        break;
    case LNN_OP_CONCAT:
        shape_ok = lnn_concat_ok(axis, &v[0], &v[1], &d);
        may_alias = 0;
        break;
    case LNN_OP_PUSH:
    case LNN_OP_DROP:
    case LNN_OP_LOOP:
    case LNN_OP_END:
        break; /* not compute ops: never called for them */
    }
    if (!shape_ok)
        return LNN_E_SHAPE;

    const lnn_range rd = lnn_range_of(&d);
    for (uint32_t i = 0; i < n; i++) {
        const lnn_range ri = lnn_range_of(&v[i]);
        if (lnn_overlap(rd, ri) && !(may_alias && lnn_identical(rd, ri)))
            return LNN_E_ALIAS;
    }
    return LNN_OK;
}

/* ---- the program ------------------------------------------------------------ */

lnn_status lnn_verify_code(lnn_model *m)
{
    const uint32_t code_off = lnn_file_offset(m, m->code);
    uint16_t stack[LNN_MAX_STACK];
    uint32_t sp = 0;
    struct {
        uint32_t off;   /* file offset of the LOOP word */
        uint32_t depth; /* stack depth at the LOOP */
        uint32_t count; /* trip count */
        uint16_t stack[LNN_MAX_STACK]; /* the stack at the LOOP */
    } loops[LNN_MAX_LOOP_DEPTH];
    uint32_t nl = 0;
    uint32_t off = code_off;

#define LNN_W_OP(w) ((w) & 0xFFu)
#define LNN_W_A(w) (((w) >> 8) & 0xFFu)
#define LNN_W_B(w) ((w) >> 16)
    for (uint32_t pc = 0; pc < m->code_words; pc++) {
        off = code_off + 4 * pc;
        const uint32_t w = lnn_rd32(m->code + 4 * (size_t)pc);
        const uint32_t opc = LNN_W_OP(w), a = LNN_W_A(w), b = LNN_W_B(w);
        const lnn_opinfo *info = &lnn_opinfo_table[opc];
        if (!info->name)
            LNN_VFAIL(E_OPCODE);

        switch ((lnn_opformat)info->format) {
        case LNN_FMT_NONE:
            if (a != 0 || b != 0)
                LNN_VFAIL(E_OPERAND);
            break;
        case LNN_FMT_PUSHT:
        case LNN_FMT_DST:
            if (a != 0 || b >= m->num_tensors)
                LNN_VFAIL(E_OPERAND);
            break;
        case LNN_FMT_DSTAX:
            if (b >= m->num_tensors ||
                a >= lnn_tensor_entry(m, b)[LNN_T_RANK])
                LNN_VFAIL(E_OPERAND);
            break;
        case LNN_FMT_COUNT:
            if (a != 0 || b == 0)
                LNN_VFAIL(E_OPERAND);
            break;
        }
        if (sp < info->pops)
            LNN_VFAIL(E_UNDERFLOW);
        if (sp - info->pops + info->pushes > LNN_MAX_STACK)
            LNN_VFAIL(E_OVERFLOW);

        /* no default: -Wswitch flags an opcode added to the .def but not
         * handled here */
        switch ((lnn_opcode)opc) {
        case LNN_OP_PUSH: {
            lnn_vtensor v;
            lnn_vtensor_read(m, b, &v);
            if (v.e.stride != 0) {
                if (nl == 0)
                    LNN_VFAIL(E_STRIDE);
                const uint64_t last = (uint64_t)v.e.offset +
                                      (uint64_t)v.e.stride * (loops[nl - 1].count - 1) +
                                      v.bytes;
                if (last > m->consts_size)
                    LNN_VFAIL(E_STRIDE);
            }
            stack[sp++] = (uint16_t)b;
            break;
        }
        case LNN_OP_DROP:
            sp--;
            break;
        case LNN_OP_LOOP:
            if (nl == LNN_MAX_LOOP_DEPTH)
                LNN_VFAIL(E_LOOP);
            loops[nl].off = off;
            loops[nl].depth = sp;
            loops[nl].count = b;
            for (uint32_t i = 0; i < sp; i++)
                loops[nl].stack[i] = stack[i];
            nl++;
            break;
        case LNN_OP_END:
            /* The body must leave the stack exactly as it found it, the same
             * tensors and not only the same depth: the next iteration then
             * starts from the state verified for the first one. (Same depth
             * alone is unsound: a body that pops an x [1] pushed before the
             * loop and leaves a [4] in its place would hand LINEAR a
             * different x on the second iteration.) */
            if (nl == 0 || loops[nl - 1].depth != sp)
                LNN_VFAIL(E_LOOP);
            for (uint32_t i = 0; i < sp; i++)
                if (loops[nl - 1].stack[i] != stack[i])
                    LNN_VFAIL(E_LOOP);
            nl--;
            break;
        case LNN_OP_ZERO:
        case LNN_OP_COPY:
        case LNN_OP_LINEAR:
        case LNN_OP_MATMUL_NT:
        case LNN_OP_ADD:
        case LNN_OP_SUB:
        case LNN_OP_MUL:
        case LNN_OP_DIV:
        case LNN_OP_NEG:
        case LNN_OP_EXP:
        case LNN_OP_SIGMOID:
        case LNN_OP_TANH:
        case LNN_OP_RELU:
        case LNN_OP_CONCAT: {
            sp -= info->pops;
            const lnn_status s =
                lnn_check_compute(m, (lnn_opcode)opc, a, b, stack + sp, info->pops);
            if (s != LNN_OK)
                return lnn_fail(m, s, off);
            stack[sp++] = (uint16_t)b;
            break;
        }
        }
    }
#undef LNN_W_OP
#undef LNN_W_A
#undef LNN_W_B
    if (nl != 0) {
        off = loops[nl - 1].off;
        LNN_VFAIL(E_LOOP);
    }
    if (sp != 0)
        LNN_VFAIL(E_STACK_END); /* off: the last instruction */
    return LNN_OK;
}
