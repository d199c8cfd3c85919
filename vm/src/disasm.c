/*
 * disasm.c - one line per instruction, names and formats from the .def.
 *
 *   pc     offset  instruction              destination / pushed tensor
 *      3  0000cc  LINEAR      t4            arena.row+0 [B,4] f32
 *     10  0000e8  LOOP        3
 *     11  0000ec    PUSH      t7            const+64 step 4 [] f32
 *     20  000110  COPY        t5            state.row+0 [B,8] f32
 */
#include "lnn_disasm.h"

#include "internal.h"

/* A bounded string builder. */
typedef struct {
    char *p;
    size_t cap, len;
} lnn_sb;

static void lnn_sb_ch(lnn_sb *s, char c)
{
    if (s->len + 1 < s->cap)
        s->p[s->len] = c;
    s->len++;
}

static void lnn_sb_str(lnn_sb *s, const char *str)
{
    while (*str)
        lnn_sb_ch(s, *str++);
}

static void lnn_sb_u32(lnn_sb *s, uint32_t v)
{
    char d[10];
    int n = 0;
    do {
        d[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        lnn_sb_ch(s, d[--n]);
}

static void lnn_sb_hex(lnn_sb *s, uint32_t v, int width)
{
    static const char hx[] = "0123456789abcdef";
    for (int i = width - 1; i >= 0; i--)
        lnn_sb_ch(s, hx[(v >> (4 * i)) & 15u]);
}

static void lnn_sb_pad(lnn_sb *s, size_t col)
{
    do
        lnn_sb_ch(s, ' ');
    while (s->len < col);
}

static size_t lnn_sb_end(lnn_sb *s)
{
    if (s->cap)
        s->p[s->len < s->cap ? s->len : s->cap - 1] = '\0';
    return s->len;
}

static void lnn_sb_shape(lnn_sb *s, const lnn_model *m, uint32_t t)
{
    lnn_tensor x;
    lnn_tensor_read(m, t, &x);
    lnn_sb_ch(s, '[');
    for (uint32_t i = 0; i < x.rank; i++) {
        if (i)
            lnn_sb_ch(s, ',');
        if (i == 0 && (x.flags & LNN_TF_BATCH))
            lnn_sb_ch(s, 'B');
        else
            lnn_sb_u32(s, x.dims[i]);
    }
    lnn_sb_str(s, x.dtype == LNN_DT_F32   ? "] f32"
                  : x.dtype == LNN_DT_U32 ? "] u32"
                  : x.dtype == LNN_DT_I8  ? "] i8"
                  : x.dtype == LNN_DT_F16 ? "] f16"
                                          : "] ?");
}

static void lnn_sb_tensor(lnn_sb *s, const lnn_model *m, uint32_t t)
{
    lnn_tensor x;
    lnn_tensor_read(m, t, &x);
    switch (x.region) {
    case LNN_REG_CONST:
        lnn_sb_str(s, "const+");
        lnn_sb_u32(s, x.offset);
        if (x.stride) {
            lnn_sb_str(s, " step ");
            lnn_sb_u32(s, x.stride);
        }
        break;
    case LNN_REG_ARENA:
        lnn_sb_str(s, (x.flags & LNN_TF_BATCH) ? "arena.row+" : "arena+");
        lnn_sb_u32(s, x.offset);
        break;
    case LNN_REG_STATE: /* batched: the offset is per row */
        lnn_sb_str(s, "state.row+");
        lnn_sb_u32(s, x.offset);
        break;
    case LNN_REG_INPUT:
        lnn_sb_str(s, "input");
        lnn_sb_u32(s, x.offset);
        break;
    default:
        lnn_sb_str(s, "output");
        lnn_sb_u32(s, x.offset);
        break;
    }
    lnn_sb_ch(s, ' ');
    lnn_sb_shape(s, m, t);
}

size_t lnn_describe_shape(const lnn_model *m, uint32_t t, char *out, size_t cap)
{
    lnn_sb s = {out, cap, 0};
    lnn_sb_shape(&s, m, t);
    return lnn_sb_end(&s);
}

size_t lnn_describe_tensor(const lnn_model *m, uint32_t t, char *out, size_t cap)
{
    lnn_sb s = {out, cap, 0};
    lnn_sb_tensor(&s, m, t);
    return lnn_sb_end(&s);
}

size_t lnn_disasm_insn(const lnn_model *m, uint32_t pc, uint32_t *depth,
                       char *out, size_t cap)
{
    lnn_sb s = {out, cap, 0};
    const uint32_t w = lnn_rd32(m->code + 4 * (size_t)pc);
    const uint32_t opc = w & 0xFFu, a = (w >> 8) & 0xFFu, b = w >> 16;
    const lnn_opinfo *info = lnn_opinfo_of(opc);
    const char *name = lnn_op_name(opc); /* NULL in an LNN_NO_NAMES build */

    uint32_t digits = 1; /* pc right-aligned in 5 columns */
    for (uint32_t v = pc; v >= 10; v /= 10)
        digits++;
    for (; digits < 5; digits++)
        lnn_sb_ch(&s, ' ');
    lnn_sb_u32(&s, pc);
    lnn_sb_str(&s, "  ");
    lnn_sb_hex(&s, lnn_file_offset(m, m->code) + 4 * pc, 6);
    lnn_sb_str(&s, "  ");
    if (!info) {
        lnn_sb_str(&s, ".word 0x");
        lnn_sb_hex(&s, w, 8);
        lnn_sb_str(&s, "   ; unknown opcode 0x");
        lnn_sb_hex(&s, opc, 2);
        return lnn_sb_end(&s);
    }
    if (opc == LNN_OP_END && *depth > 0)
        (*depth)--;
    const size_t col = s.len;
    for (uint32_t i = 0; i < *depth && i < 8; i++)
        lnn_sb_str(&s, "  ");
    if (name) {
        lnn_sb_str(&s, name);
    } else {
        lnn_sb_str(&s, "op_");
        lnn_sb_hex(&s, opc, 2);
    }
    if (info->format != LNN_FMT_NONE || a || b)
        lnn_sb_pad(&s, col + 12);
    switch ((lnn_opformat)info->format) {
    case LNN_FMT_NONE:
        break;
    case LNN_FMT_COUNT:
        lnn_sb_u32(&s, b);
        break;
    case LNN_FMT_PUSHT:
    case LNN_FMT_DST:
    case LNN_FMT_DSTAX:
    case LNN_FMT_DSTN:
    case LNN_FMT_DSTP:
        lnn_sb_ch(&s, 't');
        lnn_sb_u32(&s, b);
        if (info->format == LNN_FMT_DSTAX) {
            lnn_sb_str(&s, " axis ");
            lnn_sb_u32(&s, a);
        }
        if (info->format == LNN_FMT_DSTP) {
            lnn_sb_str(&s, " param ");
            lnn_sb_u32(&s, a);
        }
        if (info->format == LNN_FMT_DSTN && a != 1) { /* t4..t5: A destinations */
            lnn_sb_str(&s, "..t");
            lnn_sb_u32(&s, b + a - 1);
        }
        break;
    }
    /* fields the format says are unused but are not zero */
    const int a_used = info->format == LNN_FMT_DSTAX || info->format == LNN_FMT_DSTN ||
                       info->format == LNN_FMT_DSTP;
    const int b_used = info->format != LNN_FMT_NONE;
    if ((!a_used && a) || (!b_used && b)) {
        lnn_sb_str(&s, " (A=");
        lnn_sb_u32(&s, a);
        lnn_sb_str(&s, " B=");
        lnn_sb_u32(&s, b);
        lnn_sb_ch(&s, ')');
    }
    if (info->format == LNN_FMT_PUSHT || info->format == LNN_FMT_DST ||
        info->format == LNN_FMT_DSTAX || info->format == LNN_FMT_DSTN ||
        info->format == LNN_FMT_DSTP) {
        lnn_sb_pad(&s, col + 26);
        if (b < m->num_tensors)
            lnn_sb_tensor(&s, m, b);
        else
            lnn_sb_str(&s, "(no such tensor)");
    }
    if (opc == LNN_OP_LOOP || opc == LNN_OP_LOOPW)
        (*depth)++;
    return lnn_sb_end(&s);
}
