/*
 * mutator.c - a structure-aware libFuzzer mutator for .lnnb files.
 *
 * LLVMFuzzerCustomMutator parses the input into header, section table and
 * sections (tensor table, constants, code, names, meta), applies one to
 * three mutations that know the layout, writes the file back with a
 * consistent section table and file size, and recomputes the CRC, so that
 * the mutations reach the checks behind the CRC instead of dying at E_CRC.
 *
 *   tensor entries   one field (dtype, rank with dims kept consistent,
 *                    region with a fitting offset, batch flag, a dim, the
 *                    offset, stride, widened: an f16 copy placed in the
 *                    fixed arena), a copy of another entry,
 *                    appended or removed entries
 *   instructions     a new valid instruction, only its opcode / A / B,
 *                    insertion, deletion, duplication of a run, swaps,
 *                    a LOOP .. END wrapped around a run, PUSH/op/DROP
 *   constants        special floats (NaN, inf, denormals, huge), grown or
 *                    shrunk section; the words of element-wise programs
 *                    (u32 constants: n / L / R, op, d, a, b)
 *   test set         the TESTS header words (count, floats per case,
 *                    tolerance), its cases grown or shrunk
 *   header           arena sizes, state_row, input / output counts, and (after the
 *                    layout is written) raw header and section-table fields:
 *                    file size, counts, version, reserved bytes, section
 *                    kinds, offsets and sizes
 *   sections         dropped, duplicated, reordered, extra NAMES / META
 *
 * Values come from a table of boundary cases (0, 1, 2^16, 2^26 + 1,
 * 0x7FFFFFFF, 0xFFFF, 0xFFFFFFFF...), from the file itself (another
 * tensor's offset, the arena sizes) or are small steps. One call in five
 * runs libFuzzer's byte mutator instead (half of those fix the CRC too),
 * and one structured mutant in 32 keeps a wrong CRC.
 *
 * In fuzz_run the model is followed by a tail (batch size and input
 * values): the model part is mutated as above, the tail now and then by the
 * byte mutator.
 */
#include <string.h>

#include "crc32.h"
#include "fuzz_common.h"
#include "internal.h"

int lnn_fuzz_with_tail = 0;

/* ---- random numbers --------------------------------------------------------- */

static uint64_t rng_state;

static uint32_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return (uint32_t)(x >> 16);
}

static uint32_t below(uint32_t n) { return n ? rnd() % n : 0; }
static int chance(uint32_t one_in) { return below(one_in) == 0; }

static const uint32_t interesting32[] = {
    0u,          1u,          2u,          3u,          4u,          5u,
    7u,          8u,          15u,         16u,         31u,         32u,
    63u,         64u,         65u,         127u,        128u,        255u,
    256u,        1023u,       1024u,       4095u,       4096u,       0x7FFFu,
    0x8000u,     0xFFFFu,     0x10000u,    0x10001u,    0x3FFFFFFu,  0x4000000u,
    0x4000001u,  0x7FFFFFFFu, 0x80000000u, 0xFFFFFFFCu, 0xFFFFFFFEu, 0xFFFFFFFFu};

static uint32_t interesting(void)
{
    return interesting32[below(sizeof interesting32 / sizeof interesting32[0])];
}

/* ---- little-endian helpers ------------------------------------------------------ */

static uint32_t rd32(const uint8_t *p) { return lnn_rd32(p); }

static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void wr16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void fix_crc(uint8_t *data, size_t size)
{
    if (size >= 16)
        wr32(data + LNN_H_CRC, lnn_crc32(0, data + 16, size - 16));
}

size_t lnn_fuzz_model_len(const uint8_t *data, size_t size)
{
    if (!lnn_fuzz_with_tail || size < LNN_HEADER_SIZE)
        return size;
    const uint32_t fs = rd32(data + LNN_H_FILE_SIZE);
    return fs >= LNN_HEADER_SIZE && fs <= size ? fs : size;
}

/* ---- the parsed file ------------------------------------------------------------ */

#define SEC_CAP (1u << 17) /* bytes per section buffer */

typedef struct {
    uint8_t hdr[LNN_HEADER_SIZE];
    uint32_t nsec;
    uint32_t kind[LNN_MAX_SECTIONS];
    uint32_t len[LNN_MAX_SECTIONS];
    uint8_t buf[LNN_MAX_SECTIONS][SEC_CAP];
} pmodel;

static pmodel pm;
static uint8_t out_buf[LNN_MAX_SECTIONS * SEC_CAP + 4096];
static uint8_t tail_buf[4096];

/* Splits a file into header and sections (clamped to the data). */
static int parse(const uint8_t *d, size_t size)
{
    if (size < LNN_HEADER_SIZE || memcmp(d, LNN_MAGIC, 4) != 0)
        return 0;
    const uint32_t nsec = rd32(d + LNN_H_NUM_SECTIONS);
    if (nsec < 1 || nsec > LNN_MAX_SECTIONS ||
        LNN_HEADER_SIZE + (size_t)LNN_SECTION_ENTRY_SIZE * nsec > size)
        return 0;
    memcpy(pm.hdr, d, LNN_HEADER_SIZE);
    pm.nsec = nsec;
    for (uint32_t i = 0; i < nsec; i++) {
        const uint8_t *e = d + LNN_HEADER_SIZE + LNN_SECTION_ENTRY_SIZE * i;
        const uint32_t off = rd32(e + LNN_S_OFFSET);
        uint64_t len = rd32(e + LNN_S_SIZE);
        pm.kind[i] = rd32(e + LNN_S_KIND);
        if (off >= size)
            len = 0;
        else if (off + len > size)
            len = size - off;
        if (len > SEC_CAP)
            len = SEC_CAP;
        pm.len[i] = (uint32_t)len;
        if (len)
            memcpy(pm.buf[i], d + off, (size_t)len);
    }
    return 1;
}

/* Writes the parsed file with a consistent layout; 0 if it does not fit. */
static size_t serialize(uint8_t *out, size_t cap)
{
    size_t pos = LNN_HEADER_SIZE + (size_t)LNN_SECTION_ENTRY_SIZE * pm.nsec;
    if (pos > cap)
        return 0;
    memcpy(out, pm.hdr, LNN_HEADER_SIZE);
    memset(out + LNN_HEADER_SIZE, 0, pos - LNN_HEADER_SIZE);
    for (uint32_t i = 0; i < pm.nsec; i++) {
        const size_t a = pm.kind[i] == LNN_SEC_CONSTS ? LNN_CONST_ALIGN : 4;
        const size_t start = (pos + a - 1) / a * a;
        if (start + pm.len[i] > cap)
            return 0;
        memset(out + pos, 0, start - pos);
        memcpy(out + start, pm.buf[i], pm.len[i]);
        uint8_t *e = out + LNN_HEADER_SIZE + LNN_SECTION_ENTRY_SIZE * i;
        wr32(e + LNN_S_KIND, pm.kind[i]);
        wr32(e + LNN_S_OFFSET, (uint32_t)start);
        wr32(e + LNN_S_SIZE, pm.len[i]);
        wr32(e + LNN_S_RESERVED, 0);
        pos = start + pm.len[i];
    }
    wr32(out + LNN_H_FILE_SIZE, (uint32_t)pos);
    wr32(out + LNN_H_NUM_SECTIONS, pm.nsec);
    return pos;
}

static int find_section(uint32_t kind)
{
    for (uint32_t i = 0; i < pm.nsec; i++)
        if (pm.kind[i] == kind)
            return (int)i;
    return -1;
}

/* Inserts n bytes at off in section s (contents left to the caller). */
static int sec_insert(int s, uint32_t off, uint32_t n)
{
    if (pm.len[s] + n > SEC_CAP || off > pm.len[s])
        return 0;
    memmove(pm.buf[s] + off + n, pm.buf[s] + off, pm.len[s] - off);
    pm.len[s] += n;
    return 1;
}

static void sec_erase(int s, uint32_t off, uint32_t n)
{
    if (off >= pm.len[s])
        return;
    if (n > pm.len[s] - off)
        n = pm.len[s] - off;
    memmove(pm.buf[s] + off, pm.buf[s] + off + n, pm.len[s] - off - n);
    pm.len[s] -= n;
}

/* ---- tensor entries ----------------------------------------------------------- */

static uint32_t num_tensors(int ts) { return ts < 0 ? 0 : pm.len[ts] / LNN_TENSOR_ENTRY_SIZE; }

static uint32_t tensor_bytes(const uint8_t *e)
{
    uint64_t n = lnn_dtype_size(e[LNN_T_DTYPE]);
    for (uint32_t i = 0; i < e[LNN_T_RANK] && i < LNN_MAX_RANK; i++)
        n *= rd32(e + LNN_T_DIMS + 4 * i);
    return n > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)n;
}

/* Bytes of an f16 tensor's float32 copy in the arena (saturating). */
static uint32_t copy_bytes(const uint8_t *e)
{
    const uint32_t b = tensor_bytes(e);
    return b > 0x7FFFFFFFu ? 0xFFFFFFFFu : 2 * b;
}

/* A 4-aligned offset that places a tensor of `bytes` inside [0, limit). */
static uint32_t fitting_offset(uint32_t limit, uint32_t bytes)
{
    if (limit < bytes || limit == 0)
        return 0;
    return below((limit - bytes) / 4 + 1) * 4;
}

static void mutate_tensor(int ts)
{
    const uint32_t n = num_tensors(ts);
    if (n == 0)
        return;
    uint8_t *e = pm.buf[ts] + LNN_TENSOR_ENTRY_SIZE * below(n);
    const uint32_t fixed = rd32(pm.hdr + LNN_H_ARENA_FIXED), row = rd32(pm.hdr + LNN_H_ARENA_ROW);
    const uint32_t state_row = rd32(pm.hdr + LNN_H_STATE_ROW);
    const int cs = find_section(LNN_SEC_CONSTS);
    const uint32_t consts = cs < 0 ? 0 : pm.len[cs];
    switch (below(12)) {
    case 0:
        e[LNN_T_DTYPE] = (uint8_t)(chance(2) ? LNN_DT_F32 + below(4) : rnd());
        break;
    case 1: { /* rank, dims kept consistent most of the time */
        const uint32_t r = chance(8) ? (uint32_t)(uint8_t)rnd() : below(LNN_MAX_RANK + 2);
        e[LNN_T_RANK] = (uint8_t)r;
        if (!chance(4))
            for (uint32_t i = 0; i < LNN_MAX_RANK; i++) {
                uint8_t *d = e + LNN_T_DIMS + 4 * i;
                if (i >= r)
                    wr32(d, 0);
                else if (rd32(d) == 0)
                    wr32(d, 1 + below(4));
            }
        break;
    }
    case 2: { /* region, with an offset that fits it */
        const uint32_t reg = chance(8) ? (uint32_t)(uint8_t)rnd() : below(LNN_REG_STATE + 1);
        e[LNN_T_REGION] = (uint8_t)reg;
        if (reg == LNN_REG_STATE && chance(2) && e[LNN_T_RANK] > 0) { /* batched, as it must be */
            e[LNN_T_FLAGS] |= LNN_TF_BATCH;
            wr32(e + LNN_T_DIMS, 1);
        }
        const uint32_t bytes = tensor_bytes(e);
        const int batched = e[LNN_T_FLAGS] & LNN_TF_BATCH;
        uint32_t off = 0;
        if (reg == LNN_REG_CONST)
            off = fitting_offset(consts, bytes);
        else if (reg == LNN_REG_ARENA)
            off = fitting_offset(batched ? row : fixed, bytes);
        else if (reg == LNN_REG_STATE)
            off = fitting_offset(state_row, bytes);
        else
            off = below(4);
        wr32(e + LNN_T_OFFSET, off);
        if (reg != LNN_REG_CONST)
            wr32(e + LNN_T_STRIDE, 0);
        break;
    }
    case 3: /* the batch flag (dim 0 stored as 1), or other flag bits */
        if (chance(4))
            e[LNN_T_FLAGS] = (uint8_t)rnd();
        else {
            e[LNN_T_FLAGS] ^= LNN_TF_BATCH;
            if ((e[LNN_T_FLAGS] & LNN_TF_BATCH) && e[LNN_T_RANK] > 0)
                wr32(e + LNN_T_DIMS, 1);
        }
        break;
    case 4:
    case 5: { /* a dim */
        const uint32_t r = e[LNN_T_RANK] ? e[LNN_T_RANK] : 1;
        uint8_t *d = e + LNN_T_DIMS + 4 * below(r < LNN_MAX_RANK ? r : LNN_MAX_RANK);
        switch (below(3)) {
        case 0:
            wr32(d, interesting());
            break;
        case 1:
            wr32(d, rd32(d) + (chance(2) ? 1u : (uint32_t)-1));
            break;
        default:
            wr32(d, 1 + below(8));
            break;
        }
        break;
    }
    case 6:
    case 7: { /* the offset */
        uint32_t off = rd32(e + LNN_T_OFFSET);
        switch (below(5)) {
        case 0:
            off = interesting();
            break;
        case 1:
            off += chance(2) ? 4u : (uint32_t)-4;
            break;
        case 2: /* another tensor's offset, maybe nudged: overlaps */
            off = rd32(pm.buf[ts] + LNN_TENSOR_ENTRY_SIZE * below(n) + LNN_T_OFFSET) +
                  4u * (below(3)) - 4u * (chance(2));
            break;
        case 3: { /* the end of the region */
            const uint32_t bytes = tensor_bytes(e);
            const uint32_t lim = e[LNN_T_REGION] == LNN_REG_CONST   ? consts
                                 : e[LNN_T_REGION] == LNN_REG_STATE ? state_row
                                 : (e[LNN_T_FLAGS] & LNN_TF_BATCH)  ? row
                                                                    : fixed;
            off = lim - bytes + (chance(2) ? 4u : 0u);
            break;
        }
        default:
            off = off + 1 + below(3);
            break;
        }
        wr32(e + LNN_T_OFFSET, off);
        break;
    }
    case 8: /* stride */
        wr32(e + LNN_T_STRIDE, chance(2) ? tensor_bytes(e) : chance(2) ? 4u * below(8)
                                                                       : interesting());
        break;
    case 9: /* where an f16 constant's float32 copy goes: in the fixed arena, or anywhere */
        wr32(e + LNN_T_WIDENED, chance(2) ? fitting_offset(fixed, copy_bytes(e)) : interesting());
        break;
    case 10: { /* a copy of another entry, maybe with another offset */
        const uint8_t *src = pm.buf[ts] + LNN_TENSOR_ENTRY_SIZE * below(n);
        if (src != e)
            memcpy(e, src, LNN_TENSOR_ENTRY_SIZE);
        if (chance(2))
            wr32(e + LNN_T_OFFSET, rd32(e + LNN_T_OFFSET) + 4u * below(4));
        break;
    }
    default: /* a whole dims vector from another entry (same bytes, new shape) */
        memcpy(e + LNN_T_DIMS,
               pm.buf[ts] + LNN_TENSOR_ENTRY_SIZE * below(n) + LNN_T_DIMS, 16);
        e[LNN_T_RANK] = pm.buf[ts][LNN_TENSOR_ENTRY_SIZE * below(n) + LNN_T_RANK];
        break;
    }
}

static void add_or_remove_tensor(int ts)
{
    const uint32_t n = num_tensors(ts);
    if (n > 1 && chance(3)) { /* remove one: indices after it shift */
        const uint32_t t = chance(2) ? n - 1 : below(n);
        sec_erase(ts, t * LNN_TENSOR_ENTRY_SIZE, LNN_TENSOR_ENTRY_SIZE);
    } else if (n > 0 && sec_insert(ts, n * LNN_TENSOR_ENTRY_SIZE, LNN_TENSOR_ENTRY_SIZE)) {
        memcpy(pm.buf[ts] + n * LNN_TENSOR_ENTRY_SIZE,
               pm.buf[ts] + below(n) * LNN_TENSOR_ENTRY_SIZE, LNN_TENSOR_ENTRY_SIZE);
        if (chance(2)) {
            uint8_t *e = pm.buf[ts] + n * LNN_TENSOR_ENTRY_SIZE;
            wr32(e + LNN_T_OFFSET, rd32(e + LNN_T_OFFSET) + 4u * below(16));
        }
    }
    wr32(pm.hdr + LNN_H_NUM_TENSORS, num_tensors(ts));
}

/* ---- instructions ---------------------------------------------------------------- */

static uint32_t valid_ops[64];
static uint32_t n_valid_ops;

static uint32_t rand_opcode(void)
{
    if (n_valid_ops == 0)
        for (uint32_t i = 0; i < LNN_NUM_OPS; i++)
            valid_ops[n_valid_ops++] = lnn_opinfo_table[i].code;
    if (chance(32))
        return (uint8_t)rnd();
    return valid_ops[below(n_valid_ops)];
}

static uint32_t rand_tensor_index(uint32_t ntens)
{
    switch (below(16)) {
    case 0:
        return 0xFFFFu;
    case 1:
        return ntens;
    case 2:
        return ntens ? ntens - 1 : 0;
    default:
        return below(ntens ? ntens : 1);
    }
}

static uint32_t rand_b(uint32_t op, uint32_t ntens)
{
    if (op == LNN_OP_LOOP) {
        if (chance(4))
            return interesting() & 0xFFFFu;
        return 1 + below(6);
    }
    const lnn_opinfo *info = lnn_opinfo_of(op); /* NULL: op is not an opcode */
    if ((!info || info->format == LNN_FMT_NONE) && !chance(16))
        return 0;
    return rand_tensor_index(ntens);
}

static uint32_t rand_a(uint32_t op)
{
    if (op == LNN_OP_CONCAT)
        return chance(8) ? (uint8_t)rnd() : below(LNN_MAX_RANK + 1);
    return chance(16) ? (uint8_t)rnd() : 0;
}

static uint32_t rand_insn(uint32_t ntens)
{
    const uint32_t op = rand_opcode();
    return op | rand_a(op) << 8 | rand_b(op, ntens) << 16;
}

static uint32_t word_at(int cs, uint32_t i) { return rd32(pm.buf[cs] + 4 * i); }
static void set_word(int cs, uint32_t i, uint32_t w) { wr32(pm.buf[cs] + 4 * i, w); }

static int insert_words(int cs, uint32_t at, const uint32_t *w, uint32_t k)
{
    if (!sec_insert(cs, 4 * at, 4 * k))
        return 0;
    for (uint32_t i = 0; i < k; i++)
        set_word(cs, at + i, w[i]);
    return 1;
}

static void mutate_code(int cs, uint32_t ntens)
{
    const uint32_t n = pm.len[cs] / 4;
    if (n == 0) {
        const uint32_t w = rand_insn(ntens);
        insert_words(cs, 0, &w, 1);
        return;
    }
    const uint32_t at = below(n);
    const uint32_t w = word_at(cs, at);
    const uint32_t op = w & 0xFFu;
    switch (below(11)) {
    case 0: /* a new instruction in place */
        set_word(cs, at, rand_insn(ntens));
        break;
    case 1: /* B only: another tensor or trip count */
        set_word(cs, at, (w & 0xFFFFu) | rand_b(op, ntens) << 16);
        break;
    case 2: /* A only */
        set_word(cs, at, (w & 0xFFFF00FFu) | rand_a(op) << 8);
        break;
    case 3: /* opcode only: same operands, another meaning */
        set_word(cs, at, (w & ~0xFFu) | rand_opcode());
        break;
    case 4: { /* insert */
        const uint32_t x = rand_insn(ntens);
        insert_words(cs, below(n + 1), &x, 1);
        break;
    }
    case 5: /* delete a run */
        sec_erase(cs, 4 * at, 4 * (1 + below(chance(4) ? 8 : 2)));
        break;
    case 6: { /* duplicate a run */
        uint32_t k = 1 + below(8), tmp[8];
        if (k > n - at)
            k = n - at;
        for (uint32_t i = 0; i < k; i++)
            tmp[i] = word_at(cs, at + i);
        insert_words(cs, below(n + 1), tmp, k);
        break;
    }
    case 7: { /* swap */
        const uint32_t j = below(n);
        set_word(cs, at, word_at(cs, j));
        set_word(cs, j, w);
        break;
    }
    case 8: { /* LOOP c ... END around a run */
        const uint32_t end = at + below(n - at + 1);
        const uint32_t lw = LNN_OP_LOOP | rand_b(LNN_OP_LOOP, ntens) << 16;
        const uint32_t ew = LNN_OP_END;
        if (insert_words(cs, end, &ew, 1))
            insert_words(cs, at, &lw, 1);
        break;
    }
    case 9: { /* PUSH t; op d; DROP */
        uint32_t seq[3];
        seq[0] = LNN_OP_PUSH | rand_tensor_index(ntens) << 16;
        const uint32_t o = chance(2) ? LNN_OP_COPY : rand_opcode();
        seq[1] = o | rand_a(o) << 8 | rand_tensor_index(ntens) << 16;
        seq[2] = LNN_OP_DROP;
        insert_words(cs, below(n + 1), seq, 3);
        break;
    }
    default: /* a trip count */
        for (uint32_t i = 0; i < n; i++) {
            const uint32_t j = (at + i) % n;
            if ((word_at(cs, j) & 0xFFu) == LNN_OP_LOOP) {
                set_word(cs, j, LNN_OP_LOOP | rand_b(LNN_OP_LOOP, ntens) << 16);
                break;
            }
        }
        break;
    }
}

/* ---- constants, header, sections ---------------------------------------------- */

static const uint32_t special_floats[] = {
    0x7FC00000u, /* NaN */
    0xFFC00001u, /* -NaN with payload */
    0x7F800000u, /* inf */
    0xFF800000u, /* -inf */
    0x00000000u, 0x80000000u, /* +-0 */
    0x00000001u, 0x807FFFFFu, /* denormals */
    0x7F7FFFFFu, 0xFF7FFFFFu, /* +-FLT_MAX */
    0x3F800000u, 0xBF800000u, /* +-1 */
    0x42B20000u, /* 89 */
    0xC2D00000u, /* -104 */
    0x3F200000u, /* 0.625 */
};

/* A word of an element-wise program (a u32 CONST tensor, the operand p of
 * EWISEn; layout in lnn_format.h): its header (n, L, R) or one instruction
 * (op, d, a, b). 0 if the file has no u32 constant inside the section. */
static int mutate_ew_program(int ts, int cs)
{
    const uint32_t n = num_tensors(ts);
    uint32_t found = 0, pick = 0;
    for (uint32_t t = 0; t < n; t++) { /* a u32 constant, uniformly */
        const uint8_t *e = pm.buf[ts] + LNN_TENSOR_ENTRY_SIZE * t;
        if (e[LNN_T_DTYPE] != LNN_DT_U32 || e[LNN_T_REGION] != LNN_REG_CONST)
            continue;
        if (below(++found) == 0)
            pick = t;
    }
    if (!found)
        return 0;
    const uint8_t *e = pm.buf[ts] + LNN_TENSOR_ENTRY_SIZE * pick;
    const uint32_t off = rd32(e + LNN_T_OFFSET), words = rd32(e + LNN_T_DIMS);
    if (off % 4 || off >= pm.len[cs])
        return 0;
    const uint32_t avail = (pm.len[cs] - off) / 4;
    const uint32_t i = below(words < avail ? words : avail);
    uint8_t *w = pm.buf[cs] + off + 4 * i;
    static const uint8_t ew_ops[] = {LNN_OP_ADD,  LNN_OP_SUB, LNN_OP_MUL, LNN_OP_DIV,     LNN_OP_MIN,
                                     LNN_OP_MAX,  LNN_OP_POW, LNN_OP_LE,  LNN_OP_LT,      LNN_OP_NEG,
                                     LNN_OP_EXP,  LNN_OP_SIGMOID, LNN_OP_TANH, LNN_OP_RELU, LNN_OP_ABS,
                                     LNN_OP_SQRT, LNN_OP_LOG, LNN_OP_ERF};
    const uint32_t byte = below(4);
    uint8_t v;
    if (i > 0 && byte == 0 && !chance(8))
        v = ew_ops[below(sizeof ew_ops)];
    else if (chance(8))
        v = (uint8_t)rnd();
    else if (chance(2))
        v = (uint8_t)(w[byte] + (chance(2) ? 1 : 0xFF));
    else
        v = (uint8_t)below(12);
    w[byte] = v;
    return 1;
}

static void mutate_consts(int cs)
{
    const uint32_t n = pm.len[cs] / 4;
    if (n && !chance(4)) {
        wr32(pm.buf[cs] + 4 * below(n),
             special_floats[below(sizeof special_floats / sizeof special_floats[0])]);
    } else if (chance(2) && pm.len[cs]) {
        sec_erase(cs, pm.len[cs] - (1 + below(pm.len[cs] < 64 ? pm.len[cs] : 64)), 64);
    } else {
        const uint32_t k = 4 * (1 + below(16));
        if (sec_insert(cs, pm.len[cs], k))
            memset(pm.buf[cs] + pm.len[cs] - k, 0, k);
    }
}

/* The end of the furthest tensor of one part of the arena (region ARENA or
 * STATE; batched or not): a plausible size for that part. */
static uint32_t arena_need(int ts, uint32_t region, int batched)
{
    uint64_t need = 0;
    for (uint32_t t = 0; t < num_tensors(ts); t++) {
        const uint8_t *e = pm.buf[ts] + LNN_TENSOR_ENTRY_SIZE * t;
        if (e[LNN_T_REGION] == region && !(e[LNN_T_FLAGS] & LNN_TF_BATCH) == !batched) {
            const uint64_t end = (uint64_t)rd32(e + LNN_T_OFFSET) + tensor_bytes(e);
            if (end > need)
                need = end;
        }
    }
    return need > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)need;
}

static void mutate_header_fields(int ts)
{
    switch (below(4)) {
    case 0:
    case 1: {
        static const uint32_t fields[] = {LNN_H_ARENA_FIXED, LNN_H_ARENA_ROW, LNN_H_STATE_ROW};
        const uint32_t f = fields[below(3)];
        uint32_t v = rd32(pm.hdr + f);
        switch (below(4)) {
        case 0:
            v = interesting();
            break;
        case 1:
            v = arena_need(ts, f == LNN_H_STATE_ROW ? LNN_REG_STATE : LNN_REG_ARENA,
                           f != LNN_H_ARENA_FIXED);
            break;
        case 2:
            v += chance(2) ? 4u : (uint32_t)-4;
            break;
        default:
            v = v * 2 + 64;
            break;
        }
        wr32(pm.hdr + f, v);
        break;
    }
    default: {
        const uint32_t f = chance(2) ? LNN_H_NUM_INPUTS : LNN_H_NUM_OUTPUTS;
        const uint32_t v = lnn_rd16(pm.hdr + f);
        wr16(pm.hdr + f, chance(4) ? interesting() : v + (chance(2) ? 1u : (uint32_t)-1));
        break;
    }
    }
}

/* The test set (section TESTS, layout in lnn_format.h): a header word to a
 * boundary value or a step of one, the tolerance to a special float, or the
 * cases grown or shrunk by a few floats. */
static void mutate_tests(int s)
{
    uint8_t *t = pm.buf[s];
    if (pm.len[s] < LNN_TS_DATA)
        return;
    switch (below(3)) {
    case 0: {
        uint8_t *f = t + LNN_TS_COUNT + 4 * below(3); /* count, in_floats, out_floats */
        wr32(f, chance(2) ? interesting() : rd32(f) + below(3) - 1);
        break;
    }
    case 1:
        wr32(t + LNN_TS_MAX_ABS_ERR, special_floats[below(sizeof special_floats / sizeof special_floats[0])]);
        break;
    default: {
        const uint32_t n = 4 * (1 + below(4));
        if (chance(2))
            sec_erase(s, pm.len[s] - n, n);
        else if (sec_insert(s, pm.len[s], n))
            memset(t + pm.len[s] - n, 0, n);
        break;
    }
    }
}

static void mutate_sections(void)
{
    switch (below(4)) {
    case 0: /* drop one */
        if (pm.nsec > 1) {
            const uint32_t i = below(pm.nsec);
            for (uint32_t j = i; j + 1 < pm.nsec; j++) {
                pm.kind[j] = pm.kind[j + 1];
                pm.len[j] = pm.len[j + 1];
                memcpy(pm.buf[j], pm.buf[j + 1], pm.len[j]);
            }
            pm.nsec--;
        }
        break;
    case 1: /* swap two (layout order) */
        if (pm.nsec > 1) {
            const uint32_t i = below(pm.nsec), j = below(pm.nsec);
            if (i != j) {
                static uint8_t tmp[SEC_CAP];
                const uint32_t k = pm.kind[i], l = pm.len[i];
                memcpy(tmp, pm.buf[i], l);
                pm.kind[i] = pm.kind[j];
                pm.len[i] = pm.len[j];
                memcpy(pm.buf[i], pm.buf[j], pm.len[j]);
                pm.kind[j] = k;
                pm.len[j] = l;
                memcpy(pm.buf[j], tmp, l);
            }
        }
        break;
    default: /* an extra section: NAMES / META, or a duplicate kind */
        if (pm.nsec < LNN_MAX_SECTIONS) {
            const uint32_t i = pm.nsec++;
            pm.kind[i] = chance(4) ? 1 + below(6) : LNN_SEC_NAMES + below(2);
            pm.len[i] = below(24);
            for (uint32_t j = 0; j < pm.len[i]; j++)
                pm.buf[i][j] = (uint8_t)('a' + below(26));
        }
        break;
    }
}

/* Raw fields of the written file (after the layout is consistent). */
static void mutate_raw(uint8_t *d, size_t size)
{
    static const uint32_t hdr_fields[] = {LNN_H_VERSION_MAJOR, LNN_H_VERSION_MINOR,
                                          LNN_H_FILE_SIZE,     LNN_H_NUM_SECTIONS,
                                          LNN_H_NUM_TENSORS,   LNN_H_ARENA_FIXED,
                                          LNN_H_ARENA_ROW,     LNN_H_NUM_INPUTS,
                                          LNN_H_STATE_ROW};
    const uint32_t nsec = rd32(d + LNN_H_NUM_SECTIONS);
    if (chance(2) || nsec == 0 || LNN_HEADER_SIZE + 16u * nsec > size) {
        if (chance(8)) {
            d[LNN_H_RESERVED + below(LNN_HEADER_SIZE - LNN_H_RESERVED)] = (uint8_t)(1 + below(255));
            return;
        }
        const uint32_t f = hdr_fields[below(sizeof hdr_fields / sizeof hdr_fields[0])];
        if (f == LNN_H_VERSION_MAJOR || f == LNN_H_VERSION_MINOR || f == LNN_H_NUM_INPUTS) {
            wr16(d + f, chance(2) ? interesting() : lnn_rd16(d + f) + 1);
            return;
        }
        uint32_t v = rd32(d + f);
        v = chance(2) ? interesting() : v + (chance(2) ? 1u : (uint32_t)-1) * (1 + below(4));
        wr32(d + f, v);
        return;
    }
    uint8_t *e = d + LNN_HEADER_SIZE + 16u * below(nsec);
    const uint32_t f = 4 * below(4);
    uint32_t v = rd32(e + f);
    switch (below(4)) {
    case 0:
        v = interesting();
        break;
    case 1:
        v += chance(2) ? 4u : (uint32_t)-4;
        break;
    case 2: /* another entry's value: duplicate kinds, overlapping sections */
        v = rd32(d + LNN_HEADER_SIZE + 16u * below(nsec) + f);
        break;
    default:
        v = f == 0 ? 1 + below(6) : v + 64;
        break;
    }
    wr32(e + f, v);
}

/* ---- the entry point ------------------------------------------------------------ */

static size_t mutate_model(uint8_t *data, size_t size, size_t max_size)
{
    if (!chance(5) && parse(data, size)) {
        const int ts = find_section(LNN_SEC_TENSORS);
        const int cs = find_section(LNN_SEC_CODE);
        const int ks = find_section(LNN_SEC_CONSTS);
        int raw = 0;
        for (uint32_t k = 1 + below(3); k > 0; k--) {
            switch (below(16)) {
            case 0:
            case 1:
            case 2:
            case 3:
                if (ts >= 0)
                    mutate_tensor(ts);
                break;
            case 4:
                if (ts >= 0)
                    add_or_remove_tensor(ts);
                break;
            case 5:
            case 6:
            case 7:
            case 8:
            case 9:
                if (cs >= 0)
                    mutate_code(cs, num_tensors(ts));
                break;
            case 10:
                if (ks >= 0 && !(ts >= 0 && chance(2) && mutate_ew_program(ts, ks)))
                    mutate_consts(ks);
                break;
            case 11:
            case 12:
                mutate_header_fields(ts);
                break;
            case 13: {
                const int tss = find_section(LNN_SEC_TESTS);
                if (tss >= 0 && chance(2))
                    mutate_tests(tss);
                else
                    mutate_sections();
                break;
            }
            default:
                raw = 1;
                break;
            }
        }
        const size_t n = serialize(out_buf, max_size < sizeof out_buf ? max_size : sizeof out_buf);
        if (n) {
            if (raw)
                mutate_raw(out_buf, n);
            if (!chance(32))
                fix_crc(out_buf, n);
            memcpy(data, out_buf, n);
            return n;
        }
    }
    const size_t n = LLVMFuzzerMutate(data, size, max_size);
    if (chance(2))
        fix_crc(data, n);
    return n;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,
                               unsigned int seed)
{
    rng_state = 0x9E3779B97F4A7C15ull ^ ((uint64_t)seed << 1 | 1);
    rnd();
    if (!lnn_fuzz_with_tail)
        return mutate_model(data, size, max_size);

    /* fuzz_run: model + tail; the tail is kept apart from the model */
    const size_t mlen = lnn_fuzz_model_len(data, size);
    size_t tlen = size - mlen;
    if (tlen > sizeof tail_buf)
        tlen = sizeof tail_buf;
    memcpy(tail_buf, data + mlen, tlen);
    if (tlen == 0 || chance(6)) {
        if (tlen == 0) {
            tlen = 1 + below(32);
            for (size_t i = 0; i < tlen; i++)
                tail_buf[i] = (uint8_t)rnd();
        }
        tlen = LLVMFuzzerMutate(tail_buf, tlen, sizeof tail_buf < 256 ? sizeof tail_buf : 256);
        if (chance(3)) /* leave the model alone */
            goto join;
    }
    {
        const size_t room = max_size > tlen ? max_size - tlen : 0;
        if (room >= LNN_HEADER_SIZE) {
            const size_t n = mutate_model(data, mlen, room);
            /* keep the split visible: the model's file_size marks it */
            if (n >= LNN_HEADER_SIZE && rd32(data + LNN_H_FILE_SIZE) == n) {
                memcpy(data + n, tail_buf, tlen);
                return n + tlen;
            }
            return n;
        }
    }
join:
    if (mlen + tlen > max_size)
        tlen = max_size - mlen;
    memcpy(data + mlen, tail_buf, tlen);
    return mlen + tlen;
}
