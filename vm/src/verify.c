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
 *
 * The same pass tracks which ARENA and OUTPUT bytes have been written, and
 * rejects an instruction that reads a byte nothing wrote before it
 * (E_UNINIT). STATE tensors count as written from the start: they hold the
 * previous run's values (zero after a reset). There are no branches and
 * every trip count is >= 1, so the first iteration of every loop runs the
 * body in program order: "written by an earlier instruction in program
 * order" is exactly "written before the first read at run time". The pass
 * also bounds the run time: trip-count product and executed instructions
 * (E_LIMIT), and the work of a run (E_WORK, lnn_limits). Every property is
 * listed in vm/VERIFIER.md.
 */
#include "internal.h"
#include "graph.h"

#define LNN_VFAIL(st) return lnn_fail(m, LNN_##st, off)

/* lnn_check_compute holds at most LNN_MAX_POPS operands and pushes one
 * result. */
#define OP(name, code, format, pops, pushes, meaning)                           \
    _Static_assert((pops) <= LNN_MAX_POPS && (pushes) <= 1,                     \
                   "op " #name " pops more than LNN_MAX_POPS or pushes more than 1");
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
    v->bytes = v->elems * lnn_dtype_size(v->e.dtype);
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

/* numpy broadcasting of the n operands v[0..n) together (WHERE's three),
 * with the batch symbol; the result must be exactly d. */
static int lnn_broadcast_all_ok(const lnn_vtensor *v, uint32_t n, const lnn_vtensor *d)
{
    uint32_t r = 0;
    for (uint32_t k = 0; k < n; k++)
        r = v[k].e.rank > r ? v[k].e.rank : r;
    if (d->e.rank != r)
        return 0;
    for (uint32_t i = 0; i < r; i++) {
        lnn_vdim z = {1, 0}; /* the broadcast of the operands so far */
        for (uint32_t k = 0; k < n; k++) {
            const lnn_vdim x = lnn_dim_aligned(&v[k], r, i);
            if (x.batch) {
                if (!z.batch && z.value != 1)
                    return 0;
                z = x;
            } else if (z.batch) {
                if (x.value != 1)
                    return 0;
            } else if (z.value == 1) {
                z = x;
            } else if (x.value != 1 && x.value != z.value) {
                return 0;
            }
        }
        const lnn_vdim w = lnn_dim_aligned(d, r, i);
        if (z.batch != w.batch || (!z.batch && z.value != w.value))
            return 0;
    }
    return 1;
}

/* d has a's shape with any last dim; a's last dim is concrete (not the
 * batch dim): the rows of a product or of a split. */
static int lnn_same_rows(const lnn_vtensor *a, const lnn_vtensor *d)
{
    const uint32_t r = a->e.rank;
    if (r == 0 || (a->batched && r == 1))
        return 0;
    if (d->e.rank != r || d->batched != a->batched)
        return 0;
    for (uint32_t i = 0; i + 1 < r; i++)
        if (d->e.dims[i] != a->e.dims[i])
            return 0;
    return 1;
}

/* x (..., K), W (M, K), bias (M) or none -> d = x's shape with last dim M. */
static int lnn_linear_ok(const lnn_vtensor *x, const lnn_vtensor *w,
                         const lnn_vtensor *bias, const lnn_vtensor *d)
{
    if (!lnn_same_rows(x, d) || w->e.rank != 2 || w->batched)
        return 0;
    const uint32_t mm = w->e.dims[0], k = w->e.dims[1];
    if (x->e.dims[x->e.rank - 1] != k)
        return 0;
    if (bias && (bias->e.rank != 1 || bias->batched || bias->e.dims[0] != mm))
        return 0;
    return d->e.dims[d->e.rank - 1] == mm;
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

/* LINEAR_T / MATMUL_T, one destination d: x (..., K), Wt (K, M), bias (M)
 * or none; d is x's shape with any last dim (the caller checks that the
 * destinations' last dims add up to M). */
static int lnn_linear_t_ok(const lnn_vtensor *x, const lnn_vtensor *wt,
                           const lnn_vtensor *bias, const lnn_vtensor *d)
{
    if (!lnn_same_rows(x, d))
        return 0;
    if (wt->e.rank != 2 || wt->batched || x->e.dims[x->e.rank - 1] != wt->e.dims[0])
        return 0;
    return !bias || (bias->e.rank == 1 && !bias->batched && bias->e.dims[0] == wt->e.dims[1]);
}

/* The scale or bias operand of a product with m outputs: a vector (M). */
static int lnn_vector_ok(const lnn_vtensor *v, uint32_t m)
{
    return v->e.rank == 1 && !v->batched && v->e.dims[0] == m;
}

/* LINEAR_W8A16 / MATMUL_W8A16 at their first destination d: M from scale,
 * K from x's last dim, the panel P a constant of exactly (ceil(M/2),
 * ceil(K/2), 4) bytes (lnn_opcodes.def), bias (M) if any, d x's rows. The
 * later destinations are checked by lnn_check_split. */
static int lnn_w8a16_ok(const lnn_vtensor *x, const lnn_vtensor *p, const lnn_vtensor *scale,
                        const lnn_vtensor *bias, const lnn_vtensor *d)
{
    if (!lnn_same_rows(x, d) || scale->e.rank != 1 || scale->batched)
        return 0;
    const uint32_t m = scale->e.dims[0], k = x->e.dims[x->e.rank - 1];
    if (p->e.region != LNN_REG_CONST || p->e.rank != 3 || p->batched || p->e.dims[0] != m / 2 + m % 2 ||
        p->e.dims[1] != k / 2 + k % 2 || p->e.dims[2] != 4)
        return 0;
    return !bias || lnn_vector_ok(bias, m);
}

/* An EWISEn operand v against its destination d: it must broadcast to d
 * and be d's shape, a row of d (unbatched, its dims after leading 1s equal
 * to d's last dims) or a single value (see lnn_format.h). */
static int lnn_ew_operand_ok(const lnn_vtensor *v, const lnn_vtensor *d)
{
    if (!lnn_broadcast_ok(v, d, d)) /* also: v's rank <= d's */
        return 0;
    if (v->batched) /* then d is batched: the same shape */
        return v->elems == d->elems;
    if (v->elems == 1 || (!d->batched && v->elems == d->elems))
        return 1; /* a single value, or the same shape */
    uint32_t j = 0; /* a row: v's dims from the first non-1 on are d's last */
    while (j < v->e.rank && v->e.dims[j] == 1)
        j++;
    const uint32_t pad = d->e.rank - v->e.rank;
    for (; j < v->e.rank; j++)
        if (v->e.dims[j] != d->e.dims[pad + j] || (d->batched && pad + j == 0))
            return 0;
    return 1;
}

/* The program p of EWISEn (lnn_format.h): an unstrided rank-1 constant of
 * 1 + L words (E_SHAPE), whose words are well formed (E_OPERAND). */
static lnn_status lnn_ew_program_ok(const lnn_model *m, const lnn_vtensor *p,
                                    uint32_t n)
{
    if (p->e.rank != 1 || p->e.stride != 0 || p->e.region != LNN_REG_CONST)
        return LNN_E_SHAPE;
    const uint8_t *pw = m->consts + p->e.offset;
    const uint32_t h = lnn_rd32(pw);
    const uint32_t insns = (h >> 8) & 0xFFu, regs = (h >> 16) & 0xFFu;
    if (p->elems == 0 || (h & 0xFFu) != n || insns == 0 || insns > LNN_EW_MAX_INSNS ||
        regs > LNN_EW_MAX_REGS || (h >> 24) != 0)
        return LNN_E_OPERAND;
    if (p->elems != 1 + insns)
        return LNN_E_SHAPE;
    uint32_t written = 0; /* bit r: register r holds a value */
    for (uint32_t i = 0; i < insns; i++) {
        const uint32_t w = lnn_rd32(pw + 4 + 4 * (size_t)i);
        const uint32_t op = w & 0xFFu, d = (w >> 8) & 0xFFu;
        const uint32_t src[2] = {(w >> 16) & 0xFFu, w >> 24};
        uint32_t nsrc;
        switch (op) {
        LNN_CASE_BINARY:
            nsrc = 2;
            break;
        LNN_CASE_UNARY:
            nsrc = 1;
            break;
        default:
            return LNN_E_OPERAND;
        }
        if (!lnn_ew_linked(op)) /* a program op a selective build left out */
            return LNN_E_NOT_LINKED;
        if (nsrc == 1 && src[1] != 0)
            return LNN_E_OPERAND;
        for (uint32_t k = 0; k < nsrc; k++)
            if (src[k] >= n && (src[k] - n >= regs || !((written >> (src[k] - n)) & 1u)))
                return LNN_E_OPERAND;
        if (i + 1 == insns ? d != 0 : d >= regs)
            return LNN_E_OPERAND;
        written |= 1u << d;
    }
    return LNN_OK;
}

/* ---- aliasing -------------------------------------------------------------- */

/* Byte range of a tensor in its memory space. Spaces: the constants, the
 * fixed arena, the batched arena and the state (both in per-row units: a
 * batched tensor at offset o with row size s covers [o*B, (o+s)*B), so two
 * of them overlap for some B iff [o, o+s) ranges overlap; the state lies
 * after the batched arena, so the two never overlap), and each input and
 * output buffer. */
typedef struct {
    uint32_t space;
    uint64_t lo, hi;
} lnn_range;

enum { LNN_SPACE_STATE = 3, LNN_SPACE_IO = 4 };

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
    case LNN_REG_STATE:
        r.space = LNN_SPACE_STATE;
        break;
    case LNN_REG_INPUT:
        r.space = LNN_SPACE_IO + v->e.offset;
        r.lo = 0;
        break;
    default:
        r.space = LNN_SPACE_IO + LNN_MAX_IO + v->e.offset;
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

/* ---- written ranges ---------------------------------------------------------- */

/* The ARENA bytes written so far, as sorted, disjoint, non-touching ranges
 * of 4-byte units. One table for both arena parts: a key is the unit offset
 * (< 2^30, offsets + sizes fit in 32 bits) with bit 31 set for the batched
 * part (per-row units: a batched tensor at offset o with row size s covers
 * [o*B, (o+s)*B), so coverage in row units is coverage for every B). Each
 * output is one tensor (E_IO), so one bit per output suffices. */
typedef struct {
    uint32_t n;
    uint32_t lo[LNN_MAX_WRITE_RANGES], hi[LNN_MAX_WRITE_RANGES];
    uint32_t outputs; /* bit i: output i written */
} lnn_written;

#define LNN_WKEY_BATCH 0x80000000u

/* The written-set key range of an ARENA tensor. */
static void lnn_wkeys(const lnn_vtensor *v, uint32_t *lo, uint32_t *hi)
{
    const uint32_t base = v->batched ? LNN_WKEY_BATCH : 0u;
    /* offset + bytes <= arena_fixed or arena_row (u32), both multiples of 4 */
    *lo = base | (v->e.offset / 4u);
    *hi = base | (uint32_t)(((uint64_t)v->e.offset + v->bytes) / 4u);
}

/* 1 if tensor v (any region) holds data written before this instruction. */
static int lnn_is_written(const lnn_written *w, const lnn_vtensor *v)
{
    switch (v->e.region) {
    case LNN_REG_ARENA: {
        uint32_t lo, hi;
        lnn_wkeys(v, &lo, &hi);
        /* the ranges never touch, so a covered range lies inside one */
        for (uint32_t i = 0; i < w->n; i++)
            if (w->lo[i] <= lo && hi <= w->hi[i])
                return 1;
        return 0;
    }
    case LNN_REG_OUTPUT:
        return (w->outputs >> v->e.offset) & 1u;
    default: /* constants and inputs are written by the caller, the state
              * by the previous run (or the reset) */
        return 1;
    }
}

/* GCC turns the table shifts below (a few entries) into calls to memmove,
 * which nothing else in the VM calls: 250 bytes of library code on a
 * microcontroller for moving eight pairs. */
#if defined(__GNUC__) && !defined(__clang__)
#define LNN_NO_MEMMOVE __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define LNN_NO_MEMMOVE
#endif

/* Records that v (ARENA, OUTPUT or STATE) was written; 0 if the range table
 * is full. */
static LNN_NO_MEMMOVE int lnn_mark_written(lnn_written *w, const lnn_vtensor *v)
{
    if (v->e.region == LNN_REG_STATE) /* always counts as written */
        return 1;
    if (v->e.region == LNN_REG_OUTPUT) {
        w->outputs |= 1u << v->e.offset;
        return 1;
    }
    uint32_t lo, hi;
    lnn_wkeys(v, &lo, &hi);
    uint32_t i = 0;
    while (i < w->n && w->hi[i] < lo) /* ranges wholly before, not touching */
        i++;
    uint32_t j = i;
    while (j < w->n && w->lo[j] <= hi) { /* overlapping or touching: merge */
        if (w->lo[j] < lo)
            lo = w->lo[j];
        if (w->hi[j] > hi)
            hi = w->hi[j];
        j++;
    }
    if (i == j) { /* a new range at i */
        if (w->n == LNN_MAX_WRITE_RANGES)
            return 0;
        for (uint32_t k = w->n; k > i; k--) {
            w->lo[k] = w->lo[k - 1];
            w->hi[k] = w->hi[k - 1];
        }
        w->n++;
    } else { /* ranges [i, j) become one at i */
        const uint32_t gone = j - i - 1;
        for (uint32_t k = j; k < w->n; k++) {
            w->lo[k - gone] = w->lo[k];
            w->hi[k - gone] = w->hi[k];
        }
        w->n -= gone;
    }
    w->lo[i] = lo;
    w->hi[i] = hi;
    return 1;
}

/* ---- one compute instruction ------------------------------------------------ */

/* The DSTN ops with ndst destinations B = dst .. dst+ndst-1 (B itself
 * checked by lnn_check_compute): each one as B, none overlapping an operand
 * or another destination, and their last dims adding up to the columns
 * split: M of LINEAR_T, MATMUL_T and their _TQ8 forms (v[0] x, v[1] the
 * weight Wt or Qt (K, M)), of the _W8A16 forms (v[2] scale (M); the panel
 * was checked with B), a's last dim for SPLIT (v[0] a). */
static lnn_status lnn_check_split(lnn_model *m, lnn_written *w, lnn_opcode op, uint32_t dst,
                                  uint32_t ndst, const lnn_vtensor *v, uint32_t n,
                                  const lnn_vtensor *bias)
{
    const int split = op == LNN_OP_SPLIT;
    const int w8a16 = (LNN_OP_LINKED(LINEAR_W8A16) && op == LNN_OP_LINEAR_W8A16) ||
                      (LNN_OP_LINKED(MATMUL_W8A16) && op == LNN_OP_MATMUL_W8A16); /* 0 where not linked */
    const uint32_t total = split ? v[0].e.dims[v[0].e.rank - 1] : w8a16 ? v[2].e.dims[0] : v[1].e.dims[1];
    uint64_t cols = 0;
    for (uint32_t j = 0; j < ndst; j++) {
        lnn_vtensor d;
        lnn_vtensor_read(m, dst + j, &d);
        if (d.e.dtype != LNN_DT_F32)
            return LNN_E_DTYPE;
        if (!lnn_region_writable(d.e.region))
            return LNN_E_READONLY;
        if (split || w8a16 ? !lnn_same_rows(&v[0], &d) : !lnn_linear_t_ok(&v[0], &v[1], bias, &d))
            return LNN_E_SHAPE;
        cols += d.e.dims[d.e.rank - 1];
        const lnn_range rd = lnn_range_of(&d);
        for (uint32_t i = 0; i < n; i++)
            if (lnn_overlap(rd, lnn_range_of(&v[i])))
                return LNN_E_ALIAS;
        for (uint32_t i = 0; i < j; i++) {
            lnn_vtensor o;
            lnn_vtensor_read(m, dst + i, &o);
            if (lnn_overlap(rd, lnn_range_of(&o)))
                return LNN_E_ALIAS;
        }
        if (j > 0 && !lnn_mark_written(w, &d))
            return LNN_E_LIMIT;
    }
    return cols == total ? LNN_OK : LNN_E_SHAPE;
}

/* The dtype of operand i (of n, in push order): u32 for the program of
 * EWISEn, i8 for the weight of the _Q8 products, f32 for every other operand
 * of every op (so no other op takes an i8 tensor; lnn_dtype_fits). */
static uint32_t lnn_operand_dtype(lnn_opcode op, uint32_t i, uint32_t n)
{
    switch (op) {
    LNN_CASE_EWISE:
        return i + 1 == n ? LNN_DT_U32 : LNN_DT_F32;
    case LNN_OP_LINEAR_Q8:
    case LNN_OP_MATMUL_NTQ8:
    case LNN_OP_LINEAR_TQ8:
    case LNN_OP_MATMUL_TQ8:
    case LNN_OP_LINEAR_W8A16:
    case LNN_OP_MATMUL_W8A16:
        return i == 1 ? LNN_DT_I8 : LNN_DT_F32;
    default:
        return LNN_DT_F32;
    }
}

/* An operand of dtype got where the op takes want: a DT_F16 constant
 * stands for its float32 copy, so wherever an f32 operand may be (the
 * destination is never a constant). */
static int lnn_dtype_fits(uint32_t want, uint32_t got)
{
    return got == want || (want == LNN_DT_F32 && got == LNN_DT_F16);
}

/* The work of one execution of a verified compute instruction for one
 * batch row (lnn_limits): the elements of its largest operand or
 * destination (EWISEn: times its instructions), plus the multiply-adds of
 * a product (rows of x times the weight's elements; graph ops: graph.c).
 * Each term <= 2^26 * 2^26: no wrap. */
static uint64_t lnn_op_work(const lnn_model *m, lnn_opcode op, uint32_t axis,
                            const lnn_vtensor *d, const lnn_vtensor *v, uint32_t n)
{
    uint64_t elems = d->elems;
    for (uint32_t i = 0; i < n; i++)
        if (v[i].elems > elems)
            elems = v[i].elems;
    if (!lnn_op_linked(op)) /* never: lnn_check_compute refused it */
        return elems;
    switch (op) {
    case LNN_OP_LINEAR:
    case LNN_OP_MATMUL_NT:
    case LNN_OP_LINEAR_Q8:
    case LNN_OP_MATMUL_NTQ8:
    case LNN_OP_LINEAR_T:
    case LNN_OP_MATMUL_T:
    case LNN_OP_LINEAR_TQ8:
    case LNN_OP_MATMUL_TQ8:
    case LNN_OP_LINEAR_W8A16:
    case LNN_OP_MATMUL_W8A16: /* x (..., K): rows of K, each against all of W (or the panel) */
        return elems + (uint64_t)(v[0].elems / v[0].e.dims[v[0].e.rank - 1]) * v[1].elems;
    LNN_CASE_EWISE: /* the program's instructions per element */
        return (uint64_t)d->elems * ((lnn_rd32(m->consts + v[n - 1].e.offset) >> 8) & 0xFFu);
    LNN_CASE_GRAPH:
        return elems + lnn_graph_macs(op, axis, &d->e, &v[0].e, n > 1 ? &v[1].e : NULL);
    case LNN_OP_ZERO:
    case LNN_OP_COPY:
    LNN_CASE_BINARY:
    LNN_CASE_UNARY:
    case LNN_OP_WHERE:
    case LNN_OP_CONCAT:
    case LNN_OP_SPLIT:
    case LNN_OP_PUSH:
    case LNN_OP_DROP:
    case LNN_OP_LOOP:
    case LNN_OP_END:
    case LNN_OP_LOOPW:
    case LNN_OP_UNTIL:
        break;
    }
    return elems;
}

/* ops[0..n) are the operands in push order; dst is tensor index B. Checks
 * in order: dtypes, writable destination, shapes, aliasing, operands written
 * before (so a file broken in two ways reports the earlier class), then
 * records the destination as written. */
static lnn_status lnn_check_compute(lnn_model *m, lnn_written *w, lnn_opcode op,
                                    uint32_t axis, uint32_t dst,
                                    const uint16_t *ops, uint32_t n, uint64_t *work)
{
    if (!lnn_op_linked(op)) /* never: the caller refused it (E_NOT_LINKED) */
        return LNN_E_NOT_LINKED;
    lnn_vtensor d, v[LNN_MAX_POPS];
    lnn_vtensor_read(m, dst, &d);
    for (uint32_t i = 0; i < n; i++)
        lnn_vtensor_read(m, ops[i], &v[i]);
    if (d.e.dtype != LNN_DT_F32)
        return LNN_E_DTYPE;
    for (uint32_t i = 0; i < n; i++)
        if (!lnn_dtype_fits(lnn_operand_dtype(op, i, n), v[i].e.dtype))
            return LNN_E_DTYPE;
    if (!lnn_region_writable(d.e.region))
        return LNN_E_READONLY;

    int shape_ok = 1, may_alias = 1;
    const lnn_vtensor *bias = NULL; /* of the split products */
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
    LNN_CASE_BINARY:
        shape_ok = lnn_broadcast_ok(&v[0], &v[1], &d);
        break;
    case LNN_OP_WHERE:
        shape_ok = lnn_broadcast_all_ok(v, 3, &d);
        break;
    LNN_CASE_UNARY:
        shape_ok = lnn_same_shape(&v[0], &d);
        break;
    case LNN_OP_CONCAT:
        shape_ok = lnn_concat_ok(axis, &v[0], &v[1], &d);
        may_alias = 0;
        break;
    case LNN_OP_SPLIT: /* destination B here, B+1.. below */
        shape_ok = lnn_same_rows(&v[0], &d);
        may_alias = 0;
        break;
    case LNN_OP_LINEAR_T:
    case LNN_OP_MATMUL_T: /* destination B here, B+1.. below */
        bias = op == LNN_OP_LINEAR_T ? &v[2] : NULL;
        shape_ok = lnn_linear_t_ok(&v[0], &v[1], bias, &d);
        may_alias = 0;
        break;
    case LNN_OP_LINEAR_Q8: /* x, Q, scale, bias */
    case LNN_OP_MATMUL_NTQ8: /* x, Q, scale */
        shape_ok = lnn_linear_ok(&v[0], &v[1], n == 4 ? &v[3] : NULL, &d) &&
                   lnn_vector_ok(&v[2], v[1].e.dims[0]);
        may_alias = 0;
        break;
    case LNN_OP_LINEAR_TQ8: /* x, Qt, scale, bias; destination B here, B+1.. below */
    case LNN_OP_MATMUL_TQ8: /* x, Qt, scale */
        bias = n == 4 ? &v[3] : NULL;
        shape_ok = lnn_linear_t_ok(&v[0], &v[1], bias, &d) &&
                   lnn_vector_ok(&v[2], v[1].e.dims[1]);
        may_alias = 0;
        break;
    case LNN_OP_LINEAR_W8A16: /* x, P, scale, bias; destination B here, B+1.. below */
    case LNN_OP_MATMUL_W8A16: /* x, P, scale */
        /* the guard above leaves this case in a build without the ops (184 B on a Cortex-M4): the constant drops it */
        if (!(LNN_OP_LINKED(LINEAR_W8A16) || LNN_OP_LINKED(MATMUL_W8A16)))
            return LNN_E_NOT_LINKED;
        bias = n == 4 ? &v[3] : NULL;
        shape_ok = lnn_w8a16_ok(&v[0], &v[1], &v[2], bias, &d);
        may_alias = 0;
        break;
    LNN_CASE_EWISE: {
        const lnn_status ps = lnn_ew_program_ok(m, &v[n - 1], n - 1);
        if (ps != LNN_OK)
            return ps;
        for (uint32_t i = 0; i + 1 < n; i++)
            shape_ok &= lnn_ew_operand_ok(&v[i], &d);
        break;
    }
    LNN_CASE_GRAPH: /* the graph ops: graph.c, E_SHAPE or E_OPERAND */
    {
        const lnn_status gs = lnn_graph_check(op, axis, &d.e, &v[0].e, n > 1 ? &v[1].e : NULL,
                                              n > 2 ? &v[2].e : NULL);
        if (gs != LNN_OK)
            return gs;
        may_alias = 0;
        break;
    }
    case LNN_OP_PUSH:
    case LNN_OP_DROP:
    case LNN_OP_LOOP:
    case LNN_OP_END:
    case LNN_OP_LOOPW:
    case LNN_OP_UNTIL:
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
    for (uint32_t i = 0; i < n; i++)
        if (!lnn_is_written(w, &v[i]))
            return LNN_E_UNINIT;
    if (!lnn_mark_written(w, &d))
        return LNN_E_LIMIT;
    *work = lnn_op_work(m, op, axis, &d, v, n);
    if (lnn_opinfo_of(op)->format == LNN_FMT_DSTN)
        return lnn_check_split(m, w, op, dst, axis, v, n, bias);
    return LNN_OK;
}

/* ---- the program ------------------------------------------------------------ */

/* 1 if a loop-strided constant is among the sp tensors on the stack. At a
 * LOOP that is refused (E_STRIDE). The stack at an END holds the tensors it
 * held at its LOOP, so no strided operand is on the stack at an END either:
 * one pushed in a loop body is read in the iteration it was pushed in,
 * never after its loop ended nor in a later iteration (lnn_stride_bytes). */
static int lnn_strided_on(const lnn_model *m, const uint16_t *stack, uint32_t sp)
{
    for (uint32_t i = 0; i < sp; i++)
        if (lnn_rd32(lnn_tensor_entry(m, stack[i]) + LNN_T_STRIDE) != 0)
            return 1;
    return 0;
}

lnn_status lnn_verify_code(lnn_model *m)
{
    const uint32_t code_off = lnn_file_offset(m, m->code);
    uint16_t stack[LNN_MAX_STACK];
    uint32_t sp = 0;
    struct {
        uint32_t off;   /* file offset of the LOOP word */
        uint32_t depth; /* stack depth at the LOOP */
        uint32_t count; /* trip count */
        uint32_t trips; /* product of the trip counts of this and the outer loops */
        uint32_t until; /* a LOOPW: its body ends with UNTIL */
        uint16_t stack[LNN_MAX_STACK]; /* the stack at the LOOP */
    } loops[LNN_MAX_LOOP_DEPTH];
    uint32_t nl = 0;
    uint32_t off = code_off;
    /* times the current instruction runs per lnn_run (trip product of the
     * enclosing loops, <= LNN_MAX_TRIP_PRODUCT) and instructions run so far
     * (<= LNN_MAX_STEPS + LNN_MAX_TRIP_PRODUCT: no wrap in 64 bits) */
    uint32_t runs = 1;
    uint64_t steps = 0;
    uint64_t work = 0; /* of one run per batch row so far (lnn_limits) */
    lnn_written written;
    written.n = 0;
    written.outputs = 0;

#define LNN_W_OP(w) ((w) & 0xFFu)
#define LNN_W_A(w) (((w) >> 8) & 0xFFu)
#define LNN_W_B(w) ((w) >> 16)
    for (uint32_t pc = 0; pc < m->code_words; pc++) {
        off = code_off + 4 * pc;
        const uint32_t w = lnn_rd32(m->code + 4 * (size_t)pc);
        const uint32_t opc = LNN_W_OP(w), a = LNN_W_A(w), b = LNN_W_B(w);
        const lnn_opinfo *info = lnn_opinfo_of(opc);
        if (!info)
            LNN_VFAIL(E_OPCODE);
        if (!info->linked)
            LNN_VFAIL(E_NOT_LINKED);

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
        case LNN_FMT_DSTP: /* A: checked by the op's rule */
            if (b >= m->num_tensors)
                LNN_VFAIL(E_OPERAND);
            break;
        case LNN_FMT_DSTN:
            if (a == 0 || a > LNN_MAX_DSTS || (uint64_t)b + a > m->num_tensors)
                LNN_VFAIL(E_OPERAND);
            break;
        }
        if (sp < info->pops)
            LNN_VFAIL(E_UNDERFLOW);
        if (sp - info->pops + info->pushes > LNN_MAX_STACK)
            LNN_VFAIL(E_OVERFLOW);
        /* END runs once per iteration of its loop, every other word once per
         * iteration of the loops around it (LOOP: the outer ones) */
        if ((steps += runs) > LNN_MAX_STEPS)
            LNN_VFAIL(E_LIMIT);

        /* no default: -Wswitch flags an opcode added to the .def but not
         * handled here */
        switch ((lnn_opcode)opc) {
        case LNN_OP_PUSH: {
            lnn_vtensor v;
            lnn_vtensor_read(m, b, &v);
            if (v.e.stride != 0) {
                if (nl == 0)
                    LNN_VFAIL(E_STRIDE);
                const uint64_t last = v.e.offset +
                                      lnn_stride_bytes(v.e.stride, loops[nl - 1].count - 1) +
                                      v.bytes;
                if (last > m->consts_size)
                    LNN_VFAIL(E_STRIDE);
                /* the rows this loop reads are finite (the unstrided float32
                 * constants: loader.c); rows that overlap as one range */
                if (v.e.dtype == LNN_DT_F32) {
                    const uint32_t count = loops[nl - 1].count;
                    const uint32_t rows = v.e.stride >= v.bytes ? count : 1;
                    const uint32_t span = rows == 1 ? (uint32_t)(last - v.e.offset) : v.bytes;
                    for (uint32_t r = 0; r < rows; r++) {
                        const uint32_t lo = v.e.offset + (uint32_t)lnn_stride_bytes(v.e.stride, r);
                        const lnn_status fs = lnn_check_finite(m, lo, lo + span);
                        if (fs != LNN_OK)
                            return fs;
                    }
                }
            }
            stack[sp++] = (uint16_t)b;
            break;
        }
        case LNN_OP_DROP:
            sp--;
            break;
        case LNN_OP_LOOP:
        case LNN_OP_LOOPW: {
            if (nl == LNN_MAX_LOOP_DEPTH)
                LNN_VFAIL(E_LOOP);
            if (lnn_strided_on(m, stack, sp))
                LNN_VFAIL(E_STRIDE);
            /* runs <= 2^20 and b < 2^16: the product fits in 64 bits */
            const uint64_t trips = (uint64_t)runs * b;
            if (trips > LNN_MAX_TRIP_PRODUCT)
                LNN_VFAIL(E_LIMIT);
            loops[nl].off = off;
            loops[nl].depth = sp;
            loops[nl].count = b;
            loops[nl].trips = (uint32_t)trips;
            loops[nl].until = LNN_OP_LINKED(LOOPW) && opc == LNN_OP_LOOPW; /* 0 where not linked */
            for (uint32_t i = 0; i < sp; i++)
                loops[nl].stack[i] = stack[i];
            nl++;
            runs = (uint32_t)trips;
            break;
        }
        case LNN_OP_END:
            /* The body must leave the stack exactly as it found it, the same
             * tensors and not only the same depth: the next iteration then
             * starts from the state verified for the first one. (Same depth
             * alone is unsound: a body that pops an x [1] pushed before the
             * loop and leaves a [4] in its place would hand LINEAR a
             * different x on the second iteration.) */
            if (nl == 0 || loops[nl - 1].depth != sp)
                LNN_VFAIL(E_LOOP);
            /* a LOOPW's body ends with its UNTIL (checked there: the UNTIL
             * is followed by this END), a LOOP's has none */
            if (loops[nl - 1].until != (pc > 0 && LNN_W_OP(lnn_rd32(m->code + 4 * (size_t)(pc - 1))) ==
                                                      LNN_OP_UNTIL))
                LNN_VFAIL(E_LOOP);
            for (uint32_t i = 0; i < sp; i++)
                if (loops[nl - 1].stack[i] != stack[i])
                    LNN_VFAIL(E_LOOP);
            nl--;
            runs = nl ? loops[nl - 1].trips : 1;
            break;
        case LNN_OP_UNTIL: {
            /* only as the last instruction of a LOOPW body, so a trip always
             * runs the whole body: an exit leaves everything written that the
             * first trip writes (E_UNINIT stays exact) and the stack as at
             * the LOOPW. The flag: float32, written before. */
            if (nl == 0 || !loops[nl - 1].until || pc + 1 >= m->code_words ||
                LNN_W_OP(lnn_rd32(m->code + 4 * (size_t)(pc + 1))) != LNN_OP_END)
                LNN_VFAIL(E_LOOP);
            lnn_vtensor v;
            lnn_vtensor_read(m, stack[--sp], &v);
            if (v.e.dtype != LNN_DT_F32)
                LNN_VFAIL(E_DTYPE);
            if (!lnn_is_written(&written, &v))
                LNN_VFAIL(E_UNINIT);
            /* its elements, read once per trip */
            if (!lnn_work_add(&work, runs, v.elems, m->max_work))
                LNN_VFAIL(E_WORK);
            break;
        }
        case LNN_OP_ZERO:
        case LNN_OP_COPY:
        case LNN_OP_LINEAR:
        case LNN_OP_MATMUL_NT:
        LNN_CASE_BINARY:
        LNN_CASE_UNARY:
        case LNN_OP_WHERE:
        case LNN_OP_CONCAT:
        case LNN_OP_SPLIT:
        case LNN_OP_LINEAR_T:
        case LNN_OP_MATMUL_T:
        case LNN_OP_LINEAR_Q8:
        case LNN_OP_MATMUL_NTQ8:
        case LNN_OP_LINEAR_TQ8:
        case LNN_OP_MATMUL_TQ8:
        case LNN_OP_LINEAR_W8A16:
        case LNN_OP_MATMUL_W8A16:
        LNN_CASE_EWISE:
        LNN_CASE_GRAPH: { /* the graph ops: graph.c */
            sp -= info->pops;
            uint64_t w1 = 0;
            const lnn_status s = lnn_check_compute(m, &written, (lnn_opcode)opc, a,
                                                   b, stack + sp, info->pops, &w1);
            if (s != LNN_OK)
                return lnn_fail(m, s, off);
            if (!lnn_work_add(&work, runs, w1, m->max_work))
                LNN_VFAIL(E_WORK);
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
    m->work = work;
    return LNN_OK;
}
