/*
 * internal.h - shared by the VM sources (loader, verifier, interpreter,
 * disassembler) and the hosted runner. Not part of the public API.
 */
#ifndef LNN_INTERNAL_H
#define LNN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lnn_format.h"
#include "lnnvm.h"
#include "simd.h"

/* ---- opcodes, generated from lnn_opcodes.def ---------------------------- */

typedef enum {
#define OP(name, code, format, pops, pushes, meaning) LNN_OP_##name = code,
#include "lnn_opcodes.def"
#undef OP
} lnn_opcode;

/* Case labels of the op families that every dispatch treats as one, each
 * spelled once: the element-wise binary and unary ops (also the
 * instructions of EWISE programs), EWISE1..8 and the graph ops (graph.c). */
#define LNN_CASE_BINARY                                                        \
    case LNN_OP_ADD:                                                           \
    case LNN_OP_SUB:                                                           \
    case LNN_OP_MUL:                                                           \
    case LNN_OP_DIV:                                                           \
    case LNN_OP_MIN:                                                           \
    case LNN_OP_MAX:                                                           \
    case LNN_OP_POW:                                                           \
    case LNN_OP_LE:                                                            \
    case LNN_OP_LT
#define LNN_CASE_UNARY                                                         \
    case LNN_OP_NEG:                                                           \
    case LNN_OP_EXP:                                                           \
    case LNN_OP_SIGMOID:                                                       \
    case LNN_OP_TANH:                                                          \
    case LNN_OP_RELU:                                                          \
    case LNN_OP_ABS:                                                           \
    case LNN_OP_SQRT:                                                          \
    case LNN_OP_LOG:                                                           \
    case LNN_OP_ERF
#define LNN_CASE_EWISE                                                         \
    case LNN_OP_EWISE1:                                                        \
    case LNN_OP_EWISE2:                                                        \
    case LNN_OP_EWISE3:                                                        \
    case LNN_OP_EWISE4:                                                        \
    case LNN_OP_EWISE5:                                                        \
    case LNN_OP_EWISE6:                                                        \
    case LNN_OP_EWISE7:                                                        \
    case LNN_OP_EWISE8
#define LNN_CASE_GRAPH                                                         \
    case LNN_OP_CONV2D:                                                        \
    case LNN_OP_MAXPOOL2D:                                                     \
    case LNN_OP_AVGPOOL2D:                                                     \
    case LNN_OP_SOFTMAX:                                                       \
    case LNN_OP_LOG_SOFTMAX:                                                   \
    case LNN_OP_REDUCE_SUM:                                                    \
    case LNN_OP_REDUCE_MEAN:                                                   \
    case LNN_OP_MATMUL

/* Operand formats named in the .def (LNN_FMT_##format). */
typedef enum {
    LNN_FMT_NONE,
    LNN_FMT_PUSHT,
    LNN_FMT_DST,
    LNN_FMT_DSTAX,
    LNN_FMT_COUNT,
    LNN_FMT_DSTN,
    LNN_FMT_DSTP /* B destination, A a parameter the op's rule checks */
} lnn_opformat;

/* The most operands any op pops (EWISE8: 8 operands and its program). */
#define LNN_MAX_POPS 9u

/* The selective build (-DLNN_OPS_HEADER, python/lnnedge/opselect.py): its
 * generated header, included by lnnvm.h, defines LNN_OPS_SELECTED and
 * LNN_USE_<name> (0 or 1) for every opcode of the .def; LNN_OP_LINKED(name)
 * is 1 for an op whose kernels and rules this image contains. Without it
 * every op is linked. */
#ifdef LNN_OPS_SELECTED
#define LNN_OP_LINKED(name) LNN_USE_##name
/* float16 constants (their widening): refused with E_NOT_LINKED when 0 */
#define LNN_F16_LINKED LNN_USE_F16
/* an op as an instruction of an EWISE program (apart from the op itself) */
#define LNN_EW_LINKED(name) LNN_EW_USE_##name
/* Models run from their plan, sized for them by the header: the
 * instruction-by-instruction interpreter is left out, lnn_use_plan cannot
 * turn the plan off, and lnn_init refuses a model whose plan does not fit
 * (E_NOT_LINKED). */
#define LNN_PLAN_ONLY 1
#else
#define LNN_OP_LINKED(name) 1
#define LNN_F16_LINKED 1
#define LNN_EW_LINKED(name) 1
#define LNN_PLAN_ONLY 0
#endif

/* LNN_NO_NAMES=1 (MCU firmware): no status or opcode names in the image. */
#ifndef LNN_NO_NAMES
#define LNN_NO_NAMES 0
#endif

typedef struct {
    uint8_t code;   /* the opcode byte */
    uint8_t format; /* lnn_opformat */
    uint8_t pops;
    uint8_t pushes;
    uint8_t linked; /* LNN_OP_LINKED: 0, lnn_init refuses it (E_NOT_LINKED) */
} lnn_opinfo;

/* One entry per opcode of lnn_opcodes.def, in its order (dense: no entry
 * for an unused byte); LNN_NUM_OPS entries. */
enum {
#define OP(name, code, format, pops, pushes, meaning) LNN_OPI_##name,
#include "lnn_opcodes.def"
#undef OP
    LNN_NUM_OPS
};
extern const lnn_opinfo lnn_opinfo_table[LNN_NUM_OPS];

/* The entry of an opcode byte, NULL if it is not an opcode (tables.c). */
const lnn_opinfo *lnn_opinfo_of(uint32_t op);

/* The name of an opcode in the .def, NULL if none (tables.c). A device
 * build (LNN_NO_NAMES) links no names: the host prints them from the .def. */
const char *lnn_op_name(uint32_t op);

/* 1 if the build links opcode byte op (LNN_OP_LINKED): a comparison with
 * each linked opcode, always inlined, so that after a guard
 * `if (!lnn_op_linked(op)) return` the compiler knows op is one of them and
 * drops the cases of the others from the switch that follows. */
#if defined(__GNUC__)
#define LNN_INLINE_ALWAYS inline __attribute__((always_inline))
#else
#define LNN_INLINE_ALWAYS inline
#endif
static LNN_INLINE_ALWAYS int lnn_op_linked(uint32_t op)
{
    return 0
#define OP(name, code, format, pops, pushes, meaning) || (LNN_OP_LINKED(name) && op == code)
#include "lnn_opcodes.def"
#undef OP
        ;
}

/* The same for op as an instruction of an EWISE program (LNN_EW_LINKED). */
static LNN_INLINE_ALWAYS int lnn_ew_linked(uint32_t op)
{
    return 0
#define OP(name, code, format, pops, pushes, meaning) || (LNN_EW_LINKED(name) && op == code)
#include "lnn_opcodes.def"
#undef OP
        ;
}

/* ---- little-endian reads -------------------------------------------------- */

static inline uint32_t lnn_rd16(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8);
}

static inline uint32_t lnn_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

/* ---- a float's bits and back (memcpy: no aliasing UB, one move when optimised) */

static inline uint32_t lnn_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float lnn_f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- header field offsets (see lnn_format.h) ----------------------------- */

enum {
    LNN_H_MAGIC = 0,
    LNN_H_VERSION_MAJOR = 4,
    LNN_H_VERSION_MINOR = 6,
    LNN_H_FILE_SIZE = 8,
    LNN_H_CRC = 12,
    LNN_H_NUM_SECTIONS = 16,
    LNN_H_NUM_TENSORS = 20,
    LNN_H_ARENA_FIXED = 24,
    LNN_H_ARENA_ROW = 28,
    LNN_H_NUM_INPUTS = 32,
    LNN_H_NUM_OUTPUTS = 34,
    LNN_H_STATE_ROW = 36,
    LNN_H_RESERVED = 40
};

/* Section entry field offsets. */
enum { LNN_S_KIND = 0, LNN_S_OFFSET = 4, LNN_S_SIZE = 8, LNN_S_RESERVED = 12 };

/* Tensor entry field offsets. */
enum {
    LNN_T_DTYPE = 0,
    LNN_T_RANK = 1,
    LNN_T_REGION = 2,
    LNN_T_FLAGS = 3,
    LNN_T_DIMS = 4,
    LNN_T_OFFSET = 20,
    LNN_T_STRIDE = 24,
    LNN_T_WIDENED = 28
};

/* Test-set section field offsets (section TESTS); the cases start at
 * LNN_TS_DATA. */
#define LNN_TESTS_MAGIC "LNNT"
enum {
    LNN_TS_MAGIC = 0,
    LNN_TS_COUNT = 4,
    LNN_TS_IN_FLOATS = 8,
    LNN_TS_OUT_FLOATS = 12,
    LNN_TS_MAX_ABS_ERR = 16,
    LNN_TS_DATA = 20
};

/* A decoded tensor entry. */
typedef struct {
    uint32_t dtype, rank, region, flags;
    uint32_t dims[LNN_MAX_RANK];
    uint32_t offset, stride, widened; /* widened: DT_F16 only */
} lnn_tensor;

static inline const uint8_t *lnn_tensor_entry(const lnn_model *m, uint32_t t)
{
    return m->tensors + (size_t)t * LNN_TENSOR_ENTRY_SIZE;
}

static inline void lnn_tensor_read(const lnn_model *m, uint32_t t,
                                   lnn_tensor *o)
{
    const uint8_t *e = lnn_tensor_entry(m, t);
    o->dtype = e[LNN_T_DTYPE];
    o->rank = e[LNN_T_RANK];
    o->region = e[LNN_T_REGION];
    o->flags = e[LNN_T_FLAGS];
    for (unsigned i = 0; i < LNN_MAX_RANK; i++)
        o->dims[i] = lnn_rd32(e + LNN_T_DIMS + 4 * i);
    o->offset = lnn_rd32(e + LNN_T_OFFSET);
    o->stride = lnn_rd32(e + LNN_T_STRIDE);
    o->widened = lnn_rd32(e + LNN_T_WIDENED);
}

/* Bytes past its offset at which a loop-strided constant (stride > 0) is
 * read in iteration i of the loop it was pushed in: the one definition of
 * a strided operand's address, used by the verifier (i = count - 1, the
 * last), the run plan and the interpreter. The verifier refuses a strided
 * operand on the stack at a LOOP (E_STRIDE), hence at an END, so it is read
 * in the iteration it was pushed in: the plan, which forms the address when
 * the operand is read, and the interpreter, which forms it at the PUSH,
 * see the same i. */
static inline uint64_t lnn_stride_bytes(uint32_t stride, uint32_t i)
{
    return (uint64_t)stride * i;
}

/* Regions an instruction may write. */
static inline int lnn_region_writable(uint32_t region)
{
    return region == LNN_REG_ARENA || region == LNN_REG_OUTPUT || region == LNN_REG_STATE;
}

/* Bytes per element of a dtype the loader accepts, in the file (a DT_F16
 * tensor's float32 copy in the arena takes 4). */
static inline uint32_t lnn_dtype_size(uint32_t dtype)
{
    return dtype == LNN_DT_I8 ? 1u : dtype == LNN_DT_F16 ? 2u : 4u;
}

/* The float32 bits of a finite binary16 value (loader.c); exact. */
uint32_t lnn_f16_to_f32_bits(uint32_t h);

/* Elements of a verified tensor (per batch row if batched). */
static inline uint32_t lnn_tensor_elems(const lnn_tensor *t)
{
    uint32_t n = 1;
    for (uint32_t i = 0; i < t->rank; i++)
        n *= t->dims[i];
    return n;
}

/* File offset of a pointer into the model buffer. */
static inline uint32_t lnn_file_offset(const lnn_model *m, const uint8_t *p)
{
    return (uint32_t)(p - m->buf);
}

/* ---- model life cycle ----------------------------------------------------- */

#define LNN_READY_MAGIC 0x524E4E4Cu /* "LNNR" */

/* How far lnn_init got; the disassembler can list the code of a model whose
 * structure (header, sections, tensors) is valid even if its code is not. */
enum {
    LNN_STAGE_NONE = 0,
    LNN_STAGE_HEADER,   /* header and CRC valid */
    LNN_STAGE_SECTIONS, /* section table valid, pointers set */
    LNN_STAGE_TENSORS,  /* every tensor entry valid */
    LNN_STAGE_CODE,     /* code verified */
    LNN_STAGE_READY     /* arena bound, kernels chosen */
};

/* Records a load error in m and returns it. */
static inline lnn_status lnn_fail(lnn_model *m, lnn_status s, uint32_t off)
{
    m->status = (uint32_t)s;
    m->error_offset = off;
    m->ready = 0;
    return s;
}

/* E_NONFINITE at the first NaN or infinite float32 in constants bytes
 * [lo, hi) (4-aligned, inside the section), else LNN_OK (loader.c). */
lnn_status lnn_check_finite(lnn_model *m, uint32_t lo, uint32_t hi);

/* The abstract interpretation of the code (verify.c). */
lnn_status lnn_verify_code(lnn_model *m);

/* Rounds up to LNN_ARENA_ALIGN (64 bits: no wrap for any u32 sum). */
static inline uint64_t lnn_align64(uint64_t v)
{
    return (v + (LNN_ARENA_ALIGN - 1)) & ~(uint64_t)(LNN_ARENA_ALIGN - 1);
}

/* Byte offset in the arena of the state part for batch rows (lnn_format.h,
 * "Arena"): after the batched part, 64-aligned. */
static inline uint64_t lnn_state_base(uint64_t batch_base, uint32_t arena_row, uint64_t batch)
{
    return lnn_align64(batch_base + (uint64_t)arena_row * batch);
}

/* Adds the work of w operations run `runs` times to *work unless the sum
 * would pass max (*work <= max): 1 if added. No 64-bit division, which a
 * 32-bit processor does in a library routine. */
static inline int lnn_work_add(uint64_t *work, uint64_t runs, uint64_t w, uint64_t max)
{
#if defined(__GNUC__)
    uint64_t total;
    if (__builtin_mul_overflow(runs, w, &total) || total > max - *work)
        return 0;
    *work += total;
#else
    if (w != 0 && runs > (max - *work) / w)
        return 0;
    *work += runs * w;
#endif
    return 1;
}

/* Compiles verified code into m's run plan, or leaves m without one if it
 * exceeds LNN_PLAN_STEPS / LNN_PLAN_REFS (interp.c). */
void lnn_plan_build(lnn_model *m);

#endif
