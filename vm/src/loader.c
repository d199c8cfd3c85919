/*
 * loader.c - lnn_init: the loader is the verifier.
 *
 * Order: arguments, alignment, header, CRC, header fields, the arena limit
 * (lnn_limits), section table, tensor table (entries, then the float16
 * constants: their copies' overlaps, their values; then the float32
 * constants' values), test set, code (verify.c), arena, kernel set (E_CPU);
 * then the float16 constants are widened into the arena. Every
 * failure records the file offset of the offending field, entry or
 * instruction. Nothing in the file is trusted before it has been checked,
 * and all arithmetic on file values is done in 64 bits so it cannot wrap.
 */
#include <float.h>
#include <string.h>

#include "crc32.h"
#include "internal.h"
#include "kernels.h"

#define LNN_FAIL(st, off) return lnn_fail(m, LNN_##st, (uint32_t)(off))

typedef struct {
    uint32_t file_size, num_sections, num_tensors;
    uint32_t arena_fixed, arena_row, num_inputs, num_outputs, state_row;
} lnn_header;

/* Checks the header; the CRC only when check_crc. On failure returns the
 * status and sets *off. */
static lnn_status lnn_header_check(const uint8_t *p, size_t len, int check_crc,
                                   lnn_header *h, uint32_t *off)
{
#define LNN_HFAIL(st, o) \
    do {                 \
        *off = (o);      \
        return LNN_##st; \
    } while (0)
    if (len < LNN_HEADER_SIZE)
        LNN_HFAIL(E_TRUNCATED, 0);
    if (memcmp(p, LNN_MAGIC, 4) != 0)
        LNN_HFAIL(E_MAGIC, LNN_H_MAGIC);
    if (lnn_rd16(p + LNN_H_VERSION_MAJOR) != LNN_VERSION_MAJOR)
        LNN_HFAIL(E_VERSION, LNN_H_VERSION_MAJOR);
    if (lnn_rd16(p + LNN_H_VERSION_MINOR) > LNN_VERSION_MINOR)
        LNN_HFAIL(E_VERSION, LNN_H_VERSION_MINOR);
    h->file_size = lnn_rd32(p + LNN_H_FILE_SIZE);
    if (h->file_size > len)
        LNN_HFAIL(E_TRUNCATED, LNN_H_FILE_SIZE);
    if (h->file_size < len)
        LNN_HFAIL(E_SIZE, LNN_H_FILE_SIZE);
    if (check_crc && lnn_crc32(0, p + 16, len - 16) != lnn_rd32(p + LNN_H_CRC))
        LNN_HFAIL(E_CRC, LNN_H_CRC);
    h->num_sections = lnn_rd32(p + LNN_H_NUM_SECTIONS);
    if (h->num_sections < 1 || h->num_sections > LNN_MAX_SECTIONS)
        LNN_HFAIL(E_HEADER, LNN_H_NUM_SECTIONS);
    h->num_tensors = lnn_rd32(p + LNN_H_NUM_TENSORS);
    if (h->num_tensors < 1 || h->num_tensors > LNN_MAX_TENSORS)
        LNN_HFAIL(E_HEADER, LNN_H_NUM_TENSORS);
    h->arena_fixed = lnn_rd32(p + LNN_H_ARENA_FIXED);
    h->arena_row = lnn_rd32(p + LNN_H_ARENA_ROW);
    h->num_inputs = lnn_rd16(p + LNN_H_NUM_INPUTS);
    if (h->num_inputs < 1 || h->num_inputs > LNN_MAX_IO)
        LNN_HFAIL(E_HEADER, LNN_H_NUM_INPUTS);
    h->num_outputs = lnn_rd16(p + LNN_H_NUM_OUTPUTS);
    if (h->num_outputs < 1 || h->num_outputs > LNN_MAX_IO)
        LNN_HFAIL(E_HEADER, LNN_H_NUM_OUTPUTS);
    h->state_row = lnn_rd32(p + LNN_H_STATE_ROW);
    if (h->state_row % 4 != 0 || h->state_row > LNN_MAX_STATE_ROW)
        LNN_HFAIL(E_HEADER, LNN_H_STATE_ROW);
    for (uint32_t i = LNN_H_RESERVED; i < LNN_HEADER_SIZE; i++)
        if (p[i] != 0)
            LNN_HFAIL(E_HEADER, i);
    return LNN_OK;
#undef LNN_HFAIL
}

/* Arena bytes for batch rows (lnn_format.h, "Arena"); at most about
 * 2^32 + 2^32 * 2^32 * 2: no wrap in 64 bits. */
static uint64_t lnn_arena_need(uint32_t arena_fixed, uint32_t arena_row, uint32_t state_row,
                               uint64_t batch)
{
    const uint64_t base = lnn_align64(arena_fixed);
    if (state_row == 0)
        return base + (uint64_t)arena_row * batch;
    return lnn_state_base(base, arena_row, batch) + (uint64_t)state_row * batch;
}

size_t lnn_arena_size(const void *buf, size_t len, uint32_t batch)
{
    lnn_header h;
    uint32_t off;
    if (!buf || lnn_header_check((const uint8_t *)buf, len, 0, &h, &off))
        return 0;
    const uint64_t need = lnn_arena_need(h.arena_fixed, h.arena_row, h.state_row, batch);
    if (need > (uint64_t)SIZE_MAX)
        return 0;
    return (size_t)need;
}

/* Section table: bounds, alignment, overlap, duplicates, kinds, sizes. */
static lnn_status lnn_load_sections(lnn_model *m, const lnn_header *h)
{
    const uint8_t *p = m->buf;
    const uint64_t table_end = LNN_HEADER_SIZE +
                               (uint64_t)LNN_SECTION_ENTRY_SIZE * h->num_sections;
    if (table_end > h->file_size)
        LNN_FAIL(E_TRUNCATED, LNN_H_NUM_SECTIONS);

    uint32_t sec_off[LNN_MAX_SECTIONS], sec_size[LNN_MAX_SECTIONS];
    uint32_t found[LNN_SEC_TESTS + 1] = {0}; /* 1 + entry index, 0 = absent */
    for (uint32_t i = 0; i < h->num_sections; i++) {
        const uint32_t e = LNN_HEADER_SIZE + LNN_SECTION_ENTRY_SIZE * i;
        const uint32_t kind = lnn_rd32(p + e + LNN_S_KIND);
        const uint32_t off = lnn_rd32(p + e + LNN_S_OFFSET);
        const uint32_t size = lnn_rd32(p + e + LNN_S_SIZE);
        if (lnn_rd32(p + e + LNN_S_RESERVED) != 0)
            LNN_FAIL(E_SECTION, e + LNN_S_RESERVED);
        if (kind < LNN_SEC_TENSORS || kind > LNN_SEC_TESTS || found[kind])
            LNN_FAIL(E_SECTION, e + LNN_S_KIND);
        if (off < table_end)
            LNN_FAIL(E_SECTION, e + LNN_S_OFFSET);
        if (off > h->file_size)
            LNN_FAIL(E_TRUNCATED, e + LNN_S_OFFSET);
        if ((uint64_t)off + size > h->file_size)
            LNN_FAIL(E_TRUNCATED, e + LNN_S_SIZE);
        switch (kind) {
        case LNN_SEC_TENSORS:
            if (off % 4 != 0)
                LNN_FAIL(E_SECTION, e + LNN_S_OFFSET);
            if ((uint64_t)size !=
                (uint64_t)LNN_TENSOR_ENTRY_SIZE * h->num_tensors)
                LNN_FAIL(E_SECTION, e + LNN_S_SIZE);
            break;
        case LNN_SEC_CONSTS:
            if (off % LNN_CONST_ALIGN != 0)
                LNN_FAIL(E_SECTION, e + LNN_S_OFFSET);
            break;
        case LNN_SEC_CODE:
            if (off % 4 != 0)
                LNN_FAIL(E_SECTION, e + LNN_S_OFFSET);
            if (size == 0 || size % 4 != 0)
                LNN_FAIL(E_SECTION, e + LNN_S_SIZE);
            /* bounds the verifier's and the interpreter's work */
            if (size / 4 > LNN_MAX_CODE_WORDS)
                LNN_FAIL(E_LIMIT, e + LNN_S_SIZE);
            break;
        case LNN_SEC_TESTS: /* content checked with the tensors (lnn_load_tests) */
            if (off % 4 != 0)
                LNN_FAIL(E_SECTION, e + LNN_S_OFFSET);
            break;
        default: /* NAMES, META: any alignment, ignored */
            break;
        }
        for (uint32_t j = 0; j < i; j++) {
            if (size != 0 && sec_size[j] != 0 &&
                (uint64_t)off < (uint64_t)sec_off[j] + sec_size[j] &&
                (uint64_t)sec_off[j] < (uint64_t)off + size)
                LNN_FAIL(E_SECTION, e + LNN_S_OFFSET);
        }
        sec_off[i] = off;
        sec_size[i] = size;
        found[kind] = i + 1;
    }
    if (!found[LNN_SEC_TENSORS] || !found[LNN_SEC_CONSTS] || !found[LNN_SEC_CODE])
        LNN_FAIL(E_MISSING, LNN_HEADER_SIZE);

    m->tensors = p + sec_off[found[LNN_SEC_TENSORS] - 1];
    m->consts = p + sec_off[found[LNN_SEC_CONSTS] - 1];
    m->consts_size = sec_size[found[LNN_SEC_CONSTS] - 1];
    m->code = p + sec_off[found[LNN_SEC_CODE] - 1];
    m->code_words = sec_size[found[LNN_SEC_CODE] - 1] / 4;
    if (found[LNN_SEC_TESTS]) {
        m->tests = p + sec_off[found[LNN_SEC_TESTS] - 1];
        m->tests_size = sec_size[found[LNN_SEC_TESTS] - 1];
        m->tests_entry = LNN_HEADER_SIZE + LNN_SECTION_ENTRY_SIZE * (found[LNN_SEC_TESTS] - 1);
    }
    m->num_tensors = h->num_tensors;
    return LNN_OK;
}

/* One tensor entry: fields, element count, region bounds, io numbering. */
static lnn_status lnn_load_tensor(lnn_model *m, uint32_t t, uint8_t *in_seen,
                                  uint8_t *out_seen)
{
    const uint32_t e = lnn_file_offset(m, lnn_tensor_entry(m, t));
    lnn_tensor x;
    lnn_tensor_read(m, t, &x);

    if (x.dtype != LNN_DT_F32 && x.dtype != LNN_DT_U32 && x.dtype != LNN_DT_I8 &&
        x.dtype != LNN_DT_F16)
        LNN_FAIL(E_TENSOR, e + LNN_T_DTYPE);
    if (x.dtype == LNN_DT_F16 && !LNN_F16_LINKED)
        LNN_FAIL(E_NOT_LINKED, e + LNN_T_DTYPE);
    if (x.rank > LNN_MAX_RANK)
        LNN_FAIL(E_TENSOR, e + LNN_T_RANK);
    if (x.region > LNN_REG_STATE)
        LNN_FAIL(E_TENSOR, e + LNN_T_REGION);
    /* state belongs to a stream: one row per batch row */
    if (x.region == LNN_REG_STATE && !(x.flags & LNN_TF_BATCH))
        LNN_FAIL(E_TENSOR, e + LNN_T_REGION);
    /* u32: instruction data; i8: quantized weights; f16: weights widened
     * once by lnn_init */
    if (x.dtype != LNN_DT_F32 && x.region != LNN_REG_CONST)
        LNN_FAIL(E_TENSOR, e + LNN_T_DTYPE);
    if (x.flags & ~(uint32_t)LNN_TF_BATCH)
        LNN_FAIL(E_TENSOR, e + LNN_T_FLAGS);
    uint64_t elems = 1;
    for (uint32_t i = 0; i < LNN_MAX_RANK; i++) {
        const uint32_t d = x.dims[i];
        if (i < x.rank ? d == 0 : d != 0)
            LNN_FAIL(E_TENSOR, e + LNN_T_DIMS + 4 * i);
        if (i < x.rank) {
            /* both factors <= 2^26 before the product: no wrap in 64 bits */
            if (d > LNN_MAX_ELEMENTS || (elems *= d) > LNN_MAX_ELEMENTS)
                LNN_FAIL(E_TENSOR, e + LNN_T_DIMS + 4 * i);
        }
    }
    const int batched = (x.flags & LNN_TF_BATCH) != 0;
    if (batched) {
        /* dim 0 is the run's batch size: needs a dim 0 stored as 1, and a
         * region that is sized per run (a constant is not) */
        if (x.rank == 0 || x.region == LNN_REG_CONST)
            LNN_FAIL(E_TENSOR, e + LNN_T_FLAGS);
        if (x.dims[0] != 1)
            LNN_FAIL(E_TENSOR, e + LNN_T_DIMS);
    }
    /* an f16 constant is read as its one float32 copy: no per-step table */
    if (x.stride != 0 && (x.region != LNN_REG_CONST || x.dtype == LNN_DT_F16))
        LNN_FAIL(E_TENSOR, e + LNN_T_STRIDE);
    if (x.widened != 0 && x.dtype != LNN_DT_F16)
        LNN_FAIL(E_TENSOR, e + LNN_T_WIDENED);

    const uint64_t bytes = elems * lnn_dtype_size(x.dtype);
    switch (x.region) {
    case LNN_REG_CONST:
        if (x.offset % 4 != 0)
            LNN_FAIL(E_TENSOR_BOUNDS, e + LNN_T_OFFSET);
        if (x.stride % 4 != 0)
            LNN_FAIL(E_TENSOR_BOUNDS, e + LNN_T_STRIDE);
        if (x.offset + bytes > m->consts_size)
            LNN_FAIL(E_TENSOR_BOUNDS, e + LNN_T_OFFSET);
        /* the float32 copy: in the fixed arena (overlaps: lnn_check_copies) */
        if (x.dtype == LNN_DT_F16 &&
            (x.widened % 4 != 0 || x.widened + 4 * elems > m->arena_fixed))
            LNN_FAIL(E_TENSOR_BOUNDS, e + LNN_T_WIDENED);
        break;
    case LNN_REG_ARENA:
        if (x.offset % 4 != 0)
            LNN_FAIL(E_TENSOR_BOUNDS, e + LNN_T_OFFSET);
        if (x.offset + bytes > (batched ? m->arena_row : m->arena_fixed))
            LNN_FAIL(E_TENSOR_BOUNDS, e + LNN_T_OFFSET);
        break;
    case LNN_REG_STATE: /* batched, per row like the batched arena */
        if (x.offset % 4 != 0 || x.offset + bytes > m->state_row)
            LNN_FAIL(E_TENSOR_BOUNDS, e + LNN_T_OFFSET);
        break;
    case LNN_REG_INPUT:
        if (x.offset >= m->num_inputs || in_seen[x.offset])
            LNN_FAIL(E_IO, e + LNN_T_OFFSET);
        in_seen[x.offset] = 1;
        m->input_tensor[x.offset] = (uint16_t)t;
        break;
    default: /* LNN_REG_OUTPUT */
        if (x.offset >= m->num_outputs || out_seen[x.offset])
            LNN_FAIL(E_IO, e + LNN_T_OFFSET);
        out_seen[x.offset] = 1;
        m->output_tensor[x.offset] = (uint16_t)t;
        break;
    }
    if (batched && bytes > m->max_row_bytes)
        m->max_row_bytes = (uint32_t)bytes;
    return LNN_OK;
}

/* ---- float16 constants ------------------------------------------------------ */

/* Tensor indices lnn_init sorts (lnn_limits.scratch, or the model's plan
 * area): cap of them at a time. */
typedef struct {
    uint16_t *idx;
    uint32_t cap;
} lnn_scratch;

/* Bytes [lo, hi) of the arena's fixed part, used by tensor t. */
typedef struct {
    uint32_t lo, hi, t;
} lnn_span;

enum { LNN_SPAN_NONE, LNN_SPAN_ARENA, LNN_SPAN_COPY };

/* The fixed-arena bytes of tensor t: an unbatched ARENA tensor's (ARENA) or
 * a DT_F16 constant's float32 copy (COPY); NONE for every other tensor. */
static int lnn_fixed_span(const lnn_model *m, uint32_t t, lnn_span *s)
{
    const uint8_t *e = lnn_tensor_entry(m, t);
    const int copy = e[LNN_T_DTYPE] == LNN_DT_F16;
    if (!copy && (e[LNN_T_REGION] != LNN_REG_ARENA || (e[LNN_T_FLAGS] & LNN_TF_BATCH)))
        return LNN_SPAN_NONE;
    lnn_tensor x;
    lnn_tensor_read(m, t, &x);
    /* both end inside arena_fixed (lnn_load_tensor): no wrap */
    s->lo = copy ? x.widened : x.offset;
    s->hi = s->lo + 4 * lnn_tensor_elems(&x);
    s->t = t;
    return copy ? LNN_SPAN_COPY : LNN_SPAN_ARENA;
}

static uint32_t lnn_key(const lnn_model *m, uint32_t t, uint32_t field)
{
    return lnn_rd32(lnn_tensor_entry(m, t) + field);
}

static void lnn_sift(const lnn_model *m, uint16_t *a, uint32_t i, uint32_t n, uint32_t field)
{
    for (;;) {
        uint32_t c = 2 * i + 1; /* n <= 65535: no wrap */
        if (c >= n)
            return;
        if (c + 1 < n && lnn_key(m, a[c + 1], field) > lnn_key(m, a[c], field))
            c++;
        if (lnn_key(m, a[i], field) >= lnn_key(m, a[c], field))
            return;
        const uint16_t t = a[i];
        a[i] = a[c];
        a[c] = t;
        i = c;
    }
}

/* Heapsort (in place, no recursion) of the tensors a[0..n) by the u32 field
 * at byte `field` of their entries. */
static void lnn_sort_tensors(const lnn_model *m, uint16_t *a, uint32_t n, uint32_t field)
{
    /* counted down without wrapping below zero: the loader is checked for
     * unsigned wrap-around (vm/fuzz/uint_ignore.txt) */
    for (uint32_t i = n / 2; i > 0; i--)
        lnn_sift(m, a, i - 1, n, field);
    for (uint32_t k = n; k > 1; k--) {
        const uint16_t t = a[0];
        a[0] = a[k - 1];
        a[k - 1] = t;
        lnn_sift(m, a, 0, k - 1, field);
    }
}

/* The next block of tensors from *t on that keep(m, t) selects, at most
 * sc->cap, into sc->idx; *t ends past the last one taken. */
static uint32_t lnn_take_block(const lnn_model *m, const lnn_scratch *sc, uint32_t *t,
                               int (*keep)(const lnn_model *, uint32_t))
{
    uint32_t n = 0;
    for (; *t < m->num_tensors && n < sc->cap; (*t)++)
        if (keep(m, *t))
            sc->idx[n++] = (uint16_t)*t;
    return n;
}

static int lnn_is_copy(const lnn_model *m, uint32_t t)
{
    return lnn_tensor_entry(m, t)[LNN_T_DTYPE] == LNN_DT_F16;
}

static uint32_t lnn_copy_error(const lnn_model *m, uint32_t t)
{
    return lnn_file_offset(m, lnn_tensor_entry(m, t)) + LNN_T_WIDENED;
}

/* No DT_F16 copy overlaps another or an unbatched ARENA tensor. A block of
 * copies (all of them with enough scratch) is sorted by address, its
 * neighbours compared, and every later copy and every ARENA tensor looked
 * up in it by binary search: O(n log n) per block. The error is at the
 * widened field of the later (in the table) of two copies that overlap, or
 * of the copy an ARENA tensor overlaps. */
static lnn_status lnn_check_copies(lnn_model *m, const lnn_scratch *sc)
{
    if (!LNN_F16_LINKED) /* no DT_F16 tensor passed lnn_load_tensor */
        return LNN_OK;
    uint32_t t = 0, n;
    while ((n = lnn_take_block(m, sc, &t, lnn_is_copy)) > 0) {
        const uint16_t *b = sc->idx;
        lnn_sort_tensors(m, sc->idx, n, LNN_T_WIDENED);
        lnn_span s, r;
        for (uint32_t i = 0; i + 1 < n; i++) {
            lnn_fixed_span(m, b[i], &s);
            lnn_fixed_span(m, b[i + 1], &r);
            if (s.hi > r.lo)
                LNN_FAIL(E_TENSOR_BOUNDS, lnn_copy_error(m, b[i] > b[i + 1] ? b[i] : b[i + 1]));
        }
        /* disjoint and sorted by start, so sorted by end too; t: past the
         * block's last copy, earlier copies are checked */
        for (uint32_t u = 0; u < m->num_tensors; u++) {
            const int kind = lnn_fixed_span(m, u, &s);
            if (kind == LNN_SPAN_NONE || (kind == LNN_SPAN_COPY && u < t))
                continue;
            uint32_t lo = 0, hi = n; /* the first copy of the block ending after s.lo */
            while (lo < hi) {
                const uint32_t mid = lo + (hi - lo) / 2;
                lnn_fixed_span(m, b[mid], &r);
                if (r.hi > s.lo)
                    hi = mid;
                else
                    lo = mid + 1;
            }
            if (lo < n && (lnn_fixed_span(m, b[lo], &r), r.lo < s.hi))
                LNN_FAIL(E_TENSOR_BOUNDS, lnn_copy_error(m, kind == LNN_SPAN_COPY ? u : b[lo]));
        }
    }
    return LNN_OK;
}

/* A float32 bit pattern that is NaN or infinite. */
static int lnn_nonfinite32(uint32_t bits)
{
    return (bits & 0x7F800000u) == 0x7F800000u;
}

static int lnn_is_plain_f32_const(const lnn_model *m, uint32_t t)
{
    const uint8_t *e = lnn_tensor_entry(m, t);
    return e[LNN_T_DTYPE] == LNN_DT_F32 && e[LNN_T_REGION] == LNN_REG_CONST &&
           lnn_rd32(e + LNN_T_STRIDE) == 0;
}

lnn_status lnn_check_finite(lnn_model *m, uint32_t lo, uint32_t hi)
{
    for (uint32_t w = lo; w < hi; w += 4)
        if (lnn_nonfinite32(lnn_rd32(m->consts + w)))
            LNN_FAIL(E_NONFINITE, lnn_file_offset(m, m->consts + w));
    return LNN_OK;
}

/* Every value of an unstrided float32 constant is finite (the strided ones:
 * their rows at each PUSH, verify.c). A block of them (all with enough
 * scratch) is sorted by offset and the union of their ranges read once:
 * O(n log n + constants) per block, however they overlap. The error is at
 * the first non-finite value (in the constants' order). */
static lnn_status lnn_check_f32_values(lnn_model *m, const lnn_scratch *sc)
{
    uint32_t t = 0, n;
    while ((n = lnn_take_block(m, sc, &t, lnn_is_plain_f32_const)) > 0) {
        lnn_sort_tensors(m, sc->idx, n, LNN_T_OFFSET);
        uint32_t done = 0; /* the constants before it are checked */
        for (uint32_t i = 0; i < n; i++) {
            lnn_tensor x;
            lnn_tensor_read(m, sc->idx[i], &x);
            const uint32_t end = x.offset + 4 * lnn_tensor_elems(&x); /* <= consts_size */
            const lnn_status s = lnn_check_finite(m, x.offset > done ? x.offset : done, end);
            if (s != LNN_OK)
                return s;
            if (end > done)
                done = end;
        }
    }
    return LNN_OK;
}

/* Reads the first DT_F16 tensor at index *t or later into x and sets *t to
 * its index; 0 when there is none. */
static int lnn_next_f16(const lnn_model *m, uint32_t *t, lnn_tensor *x)
{
    for (; *t < m->num_tensors; (*t)++) {
        lnn_tensor_read(m, *t, x);
        if (x->dtype == LNN_DT_F16)
            return 1;
    }
    return 0;
}

/* Every DT_F16 value is finite (exponent bits not all ones). The copies are
 * disjoint inside arena_fixed, so this reads at most arena_fixed / 4 values,
 * as many as lnn_init converts. */
static lnn_status lnn_check_f16_values(lnn_model *m)
{
    if (!LNN_F16_LINKED)
        return LNN_OK;
    lnn_tensor x;
    for (uint32_t t = 0; lnn_next_f16(m, &t, &x); t++) {
        const uint8_t *v = m->consts + x.offset;
        const uint32_t n = lnn_tensor_elems(&x);
        for (uint32_t k = 0; k < n; k++)
            if ((lnn_rd16(v + 2 * (size_t)k) & 0x7C00u) == 0x7C00u)
                LNN_FAIL(E_NONFINITE, lnn_file_offset(m, v + 2 * (size_t)k));
    }
    return LNN_OK;
}

uint32_t lnn_f16_to_f32_bits(uint32_t h)
{
    const uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1Fu;
    uint32_t man = h & 0x3FFu, exp32 = exp + 112u; /* exponent bias 15 -> 127 */
    if (exp == 0 && man == 0)
        return sign;
    if (exp == 0) { /* subnormal, man * 2^-24: as 1.f * 2^(-14 - shifts) */
        exp32 = 113u;
        while (!(man & 0x400u)) {
            man <<= 1;
            exp32--;
        }
        man &= 0x3FFu;
    }
    return sign | (exp32 << 23) | (man << 13);
}

/* Writes every DT_F16 constant's float32 copy into the bound arena. */
static void lnn_widen_f16(lnn_model *m)
{
    if (!LNN_F16_LINKED)
        return;
    lnn_tensor x;
    for (uint32_t t = 0; lnn_next_f16(m, &t, &x); t++) {
        const uint8_t *v = m->consts + x.offset;
        uint8_t *f = m->arena + x.widened;
        const uint32_t n = lnn_tensor_elems(&x);
        for (uint32_t k = 0; k < n; k++) {
            const uint32_t bits = lnn_f16_to_f32_bits(lnn_rd16(v + 2 * (size_t)k));
            memcpy(f + 4 * (size_t)k, &bits, 4);
        }
    }
}

static lnn_status lnn_load_tensors(lnn_model *m, const lnn_scratch *sc)
{
    uint8_t in_seen[LNN_MAX_IO] = {0}, out_seen[LNN_MAX_IO] = {0};
    for (uint32_t t = 0; t < m->num_tensors; t++) {
        lnn_status s = lnn_load_tensor(m, t, in_seen, out_seen);
        if (s != LNN_OK)
            return s;
    }
    for (uint32_t i = 0; i < m->num_inputs; i++)
        if (!in_seen[i])
            LNN_FAIL(E_IO, LNN_H_NUM_INPUTS);
    for (uint32_t i = 0; i < m->num_outputs; i++)
        if (!out_seen[i])
            LNN_FAIL(E_IO, LNN_H_NUM_OUTPUTS);
    lnn_status s = lnn_check_copies(m, sc);
    if (s == LNN_OK)
        s = lnn_check_f16_values(m);
    return s != LNN_OK ? s : lnn_check_f32_values(m, sc);
}

static uint32_t lnn_io_elems(const lnn_model *m, uint32_t t)
{
    lnn_tensor x;
    lnn_tensor_read(m, t, &x);
    return lnn_tensor_elems(&x);
}

/* Floats of one batch row of all the inputs (or outputs): at most
 * LNN_MAX_IO * LNN_MAX_ELEMENTS = 2^30. */
static uint32_t lnn_io_floats(const lnn_model *m, const uint16_t *tensor, uint32_t n)
{
    uint32_t sum = 0;
    for (uint32_t i = 0; i < n; i++)
        sum += lnn_io_elems(m, tensor[i]);
    return sum;
}

/* The test set, if any (layout in lnn_format.h): magic, count >= 1, the
 * floats per case of the model's inputs and outputs, the exact size, and a
 * tolerance that is a finite value >= 0. Sizes in 64 bits: once in_floats
 * and out_floats match the model they are <= 2^30 each, so count * (in +
 * out) < 2^32 * 2^31 cannot wrap. */
static lnn_status lnn_load_tests(lnn_model *m)
{
    const uint8_t *t = m->tests;
    if (!t)
        return LNN_OK;
    const uint32_t at = lnn_file_offset(m, t);
    if (m->tests_size < LNN_TS_DATA)
        LNN_FAIL(E_TESTS, m->tests_entry + LNN_S_SIZE);
    if (memcmp(t + LNN_TS_MAGIC, LNN_TESTS_MAGIC, 4) != 0)
        LNN_FAIL(E_TESTS, at + LNN_TS_MAGIC);
    const uint32_t count = lnn_rd32(t + LNN_TS_COUNT);
    const uint32_t in = lnn_rd32(t + LNN_TS_IN_FLOATS), out = lnn_rd32(t + LNN_TS_OUT_FLOATS);
    if (count == 0)
        LNN_FAIL(E_TESTS, at + LNN_TS_COUNT);
    if (in != lnn_io_floats(m, m->input_tensor, m->num_inputs))
        LNN_FAIL(E_TESTS, at + LNN_TS_IN_FLOATS);
    if (out != lnn_io_floats(m, m->output_tensor, m->num_outputs))
        LNN_FAIL(E_TESTS, at + LNN_TS_OUT_FLOATS);
    if ((uint64_t)m->tests_size != LNN_TS_DATA + 4u * (uint64_t)count * ((uint64_t)in + out))
        LNN_FAIL(E_TESTS, m->tests_entry + LNN_S_SIZE);
    float tol;
    memcpy(&tol, t + LNN_TS_MAX_ABS_ERR, sizeof tol);
    if (!(tol >= 0.0f && tol <= FLT_MAX)) /* NaN, negative or infinite */
        LNN_FAIL(E_TESTS, at + LNN_TS_MAX_ABS_ERR);
    /* every input and expected value finite: a NaN expected would make a
     * NaN output look right */
    for (uint32_t w = LNN_TS_DATA; w < m->tests_size; w += 4)
        if (lnn_nonfinite32(lnn_rd32(t + w)))
            LNN_FAIL(E_NONFINITE, at + w);
    return LNN_OK;
}

/* The largest batch whose arena (lnn_arena_need) fits in arena_len bytes,
 * capped at UINT32_MAX; 0 if not even one row fits. */
static uint64_t lnn_arena_rows(const lnn_model *m)
{
    const uint64_t base = lnn_align64(m->arena_fixed);
    const uint64_t per_row = (uint64_t)m->arena_row + m->state_row;
    if (per_row == 0)
        return UINT32_MAX;
    /* base <= arena_len (lnn_bind_arena): avail and, when it is not above
     * avail, per_row fit in size_t, so the division is a native one (no
     * 64-bit division on a 32-bit processor) */
    const uint64_t avail = (uint64_t)m->arena_len - base;
    uint64_t rows = per_row > avail ? 0 : (size_t)avail / (size_t)per_row;
    if (rows > UINT32_MAX)
        rows = UINT32_MAX;
    /* rows fit without the state part's alignment (< 64 bytes); each row
     * less frees >= 4 of them, so this runs at most 16 times */
    while (rows > 0 && lnn_arena_need(m->arena_fixed, m->arena_row, m->state_row, rows) >
                           (uint64_t)m->arena_len)
        rows--;
    return rows;
}

/* Binds the arena: the fixed part and at least one batch row (with its
 * state) must fit. */
static lnn_status lnn_bind_arena(lnn_model *m)
{
    const uint64_t base = lnn_align64(m->arena_fixed);
    if ((uint64_t)m->arena_len < base)
        LNN_FAIL(E_ARENA, LNN_H_ARENA_FIXED);
    if ((uint64_t)m->arena_len - base < m->arena_row)
        LNN_FAIL(E_ARENA, LNN_H_ARENA_ROW);
    uint64_t max_batch = lnn_arena_rows(m);
    if (max_batch == 0) /* the batched row fits, its state does not */
        LNN_FAIL(E_ARENA, LNN_H_STATE_ROW);
    /* batch * row bytes of any batched tensor (inputs and outputs too) must
     * be addressable; only limits 32-bit targets */
    if (m->max_row_bytes != 0 && max_batch > SIZE_MAX / m->max_row_bytes)
        max_batch = SIZE_MAX / m->max_row_bytes;
    m->batch_base = (size_t)base;
    m->max_batch = (uint32_t)max_batch;
    return LNN_OK;
}

/* The arena one batch row needs against the limit: the error at the header
 * field whose part passes it. */
static lnn_status lnn_check_arena_limit(lnn_model *m, uint64_t max_arena)
{
    const uint64_t base = lnn_align64(m->arena_fixed);
    if (base > max_arena)
        LNN_FAIL(E_ARENA_LIMIT, LNN_H_ARENA_FIXED);
    if (base + m->arena_row > max_arena)
        LNN_FAIL(E_ARENA_LIMIT, LNN_H_ARENA_ROW);
    if (lnn_arena_need(m->arena_fixed, m->arena_row, m->state_row, 1) > max_arena)
        LNN_FAIL(E_ARENA_LIMIT, LNN_H_STATE_ROW);
    return LNN_OK;
}

lnn_status lnn_init(lnn_model *m, const void *buf, size_t len, void *arena,
                    size_t arena_len)
{
    return lnn_init_limits(m, buf, len, arena, arena_len, NULL);
}

lnn_status lnn_init_limits(lnn_model *m, const void *buf, size_t len, void *arena,
                           size_t arena_len, const lnn_limits *limits)
{
    if (!m)
        return LNN_E_ARG;
    memset(m, 0, sizeof *m);
    if (!buf || len == 0 || (!arena && arena_len != 0))
        LNN_FAIL(E_ARG, 0);
    if ((uintptr_t)buf % 4 != 0 || (uintptr_t)arena % 4 != 0)
        LNN_FAIL(E_ALIGN, 0);
    m->buf = (const uint8_t *)buf;
    m->len = len;
    m->arena = (uint8_t *)arena;
    m->arena_len = arena_len;

    lnn_header h;
    uint32_t off = 0;
    lnn_status s = lnn_header_check(m->buf, len, 1, &h, &off);
    if (s != LNN_OK)
        return lnn_fail(m, s, off);
    m->arena_fixed = h.arena_fixed;
    m->arena_row = h.arena_row;
    m->state_row = h.state_row;
    m->num_inputs = h.num_inputs;
    m->num_outputs = h.num_outputs;
    m->max_work = limits && limits->max_work ? limits->max_work : LNN_DEFAULT_MAX_WORK;
    if ((s = lnn_check_arena_limit(m, limits && limits->max_arena ? limits->max_arena
                                                                  : LNN_DEFAULT_MAX_ARENA)) !=
        LNN_OK)
        return s;
    m->stage = LNN_STAGE_HEADER;

    if ((s = lnn_load_sections(m, &h)) != LNN_OK)
        return s;
    m->stage = LNN_STAGE_SECTIONS;
    /* the sorts' scratch: the caller's, else the plan's room (the plan is
     * built last) */
    lnn_scratch sc = {m->plan_scratch, sizeof m->plan_scratch / sizeof m->plan_scratch[0]};
    if (limits && limits->scratch && limits->scratch_len / 2 > sc.cap) {
        if ((uintptr_t)limits->scratch % 4 != 0)
            LNN_FAIL(E_ALIGN, 0);
        sc.idx = (uint16_t *)limits->scratch;
        sc.cap = limits->scratch_len / 2 < LNN_MAX_TENSORS ? (uint32_t)(limits->scratch_len / 2)
                                                           : LNN_MAX_TENSORS;
    }
    if ((s = lnn_load_tensors(m, &sc)) != LNN_OK)
        return s;
    m->stage = LNN_STAGE_TENSORS;
    if ((s = lnn_load_tests(m)) != LNN_OK)
        return s;
    if ((s = lnn_verify_code(m)) != LNN_OK)
        return s;
    m->stage = LNN_STAGE_CODE;
    if ((s = lnn_bind_arena(m)) != LNN_OK)
        return s;
    m->kernels = lnn_kernels_select();
    if (!m->kernels)
        LNN_FAIL(E_CPU, 0);
    lnn_widen_f16(m);
    lnn_plan_build(m);
    if (LNN_PLAN_ONLY && m->plan_steps == 0) /* its plan is larger than this image's */
        LNN_FAIL(E_NOT_LINKED, lnn_file_offset(m, m->code));
    m->stage = LNN_STAGE_READY;
    m->status = LNN_OK;
    m->error_offset = 0;
    m->ready = LNN_READY_MAGIC;
    return LNN_OK;
}

/* ---- accessors ------------------------------------------------------------ */

static int lnn_is_ready(const lnn_model *m)
{
    return m && m->ready == LNN_READY_MAGIC;
}

uint32_t lnn_error_offset(const lnn_model *m) { return m ? m->error_offset : 0; }

uint64_t lnn_work(const lnn_model *m)
{
    return lnn_is_ready(m) ? m->work : 0;
}

uint32_t lnn_max_batch(const lnn_model *m)
{
    return lnn_is_ready(m) ? m->max_batch : 0;
}

uint32_t lnn_num_inputs(const lnn_model *m)
{
    return lnn_is_ready(m) ? m->num_inputs : 0;
}

uint32_t lnn_num_outputs(const lnn_model *m)
{
    return lnn_is_ready(m) ? m->num_outputs : 0;
}

static int lnn_io_batched(const lnn_model *m, uint32_t t)
{
    return (lnn_tensor_entry(m, t)[LNN_T_FLAGS] & LNN_TF_BATCH) != 0;
}

uint32_t lnn_input_row_elems(const lnn_model *m, uint32_t i)
{
    if (!lnn_is_ready(m) || i >= m->num_inputs)
        return 0;
    return lnn_io_elems(m, m->input_tensor[i]);
}

uint32_t lnn_output_row_elems(const lnn_model *m, uint32_t i)
{
    if (!lnn_is_ready(m) || i >= m->num_outputs)
        return 0;
    return lnn_io_elems(m, m->output_tensor[i]);
}

int lnn_input_batched(const lnn_model *m, uint32_t i)
{
    if (!lnn_is_ready(m) || i >= m->num_inputs)
        return 0;
    return lnn_io_batched(m, m->input_tensor[i]);
}

int lnn_output_batched(const lnn_model *m, uint32_t i)
{
    if (!lnn_is_ready(m) || i >= m->num_outputs)
        return 0;
    return lnn_io_batched(m, m->output_tensor[i]);
}

const char *lnn_isa(const lnn_model *m)
{
    return lnn_is_ready(m) ? m->kernels->isa : "none";
}

lnn_status lnn_use_kernels(lnn_model *m, const char *isa)
{
    if (!m || !isa)
        return LNN_E_ARG;
    if (!lnn_is_ready(m))
        return LNN_E_NOT_READY;
    const lnn_kernels *k = lnn_kernels_find(isa);
    if (!k || !lnn_kernels_supported(k))
        return LNN_E_CPU;
    m->kernels = k;
    return LNN_OK;
}

const char *lnn_kernel_set_name(uint32_t i)
{
    for (uint32_t j = 0; lnn_kernel_sets[j]; j++)
        if (j == i)
            return lnn_kernel_sets[j]->isa;
    return NULL;
}

int lnn_get_tests(const lnn_model *m, lnn_tests *t)
{
    if (!t)
        return 0;
    memset(t, 0, sizeof *t);
    if (!lnn_is_ready(m) || !m->tests)
        return 0;
    const uint8_t *p = m->tests;
    t->count = lnn_rd32(p + LNN_TS_COUNT);
    t->in_floats = lnn_rd32(p + LNN_TS_IN_FLOATS);
    t->out_floats = lnn_rd32(p + LNN_TS_OUT_FLOATS);
    memcpy(&t->max_abs_err, p + LNN_TS_MAX_ABS_ERR, sizeof t->max_abs_err);
    /* the section is 4-aligned in a 4-aligned buffer */
    t->inputs = (const float *)(const void *)(p + LNN_TS_DATA);
    t->expected = t->inputs + (size_t)t->count * t->in_floats;
    return 1;
}

lnn_status lnn_reset(lnn_model *m)
{
    if (!m)
        return LNN_E_ARG;
    if (!lnn_is_ready(m))
        return LNN_E_NOT_READY;
    m->state_batch = 0; /* the next run zeroes the state for its batch */
    return LNN_OK;
}

void lnn_set_trace(lnn_model *m, lnn_trace_fn fn, void *ctx)
{
    if (!m)
        return;
    m->trace = fn;
    m->trace_ctx = ctx;
}
