/*
 * lnn_format.h - the .lnnb file format, defined and documented in one place.
 *
 * All integers are little-endian. Offsets are from the start of the file.
 *
 * File
 * ----
 *   [0, 64)            header
 *   [64, 64 + 16*n)    section table, n = num_sections entries
 *   ...                sections, each inside the file, none overlapping
 *
 * Header (64 bytes)
 * -----------------
 *   off  size  field
 *   0    4     magic "LNNB"
 *   4    2     version_major   == LNN_VERSION_MAJOR
 *   6    2     version_minor   <= LNN_VERSION_MINOR
 *   8    4     file_size       == length of the buffer handed to lnn_init
 *   12   4     crc32           CRC-32 (IEEE 802.3, as zlib) of bytes [16, file_size)
 *   16   4     num_sections    1..LNN_MAX_SECTIONS
 *   20   4     num_tensors     1..LNN_MAX_TENSORS
 *   24   4     arena_fixed     bytes of arena independent of the batch size
 *   28   4     arena_row       bytes of arena per batch row
 *   32   2     num_inputs      1..LNN_MAX_IO
 *   34   2     num_outputs     1..LNN_MAX_IO
 *   36   4     state_row       bytes of persistent state per batch row, a
 *                              multiple of 4, <= LNN_MAX_STATE_ROW (0: the
 *                              model keeps no state)
 *   40   24    reserved, zero
 *
 * Section table entry (16 bytes)
 * ------------------------------
 *   0 u32 kind (LNN_SEC_*), 4 u32 offset, 8 u32 size, 12 u32 reserved (zero)
 *   TENSORS: 4-aligned, size == 32 * num_tensors            (required)
 *   CONSTS:  64-aligned, any size (may be 0)                  (required)
 *   CODE:    4-aligned, size a non-zero multiple of 4,       (required)
 *            at most 4 * LNN_MAX_CODE_WORDS
 *   NAMES, META: optional, ignored by the VM (tensor names, JSON metadata).
 *   TESTS: optional, ignored by lnn_run: a bundled test set for the smoke
 *            test before a deployment is activated (format below).
 *   Each kind at most once; unknown kinds are rejected.
 *
 * Tensor entry (32 bytes)
 * -----------------------
 *   0  u8   dtype    LNN_DT_F32 (float32), LNN_DT_U32 (uint32, CONST only:
 *                    instruction data such as element-wise programs),
 *                    LNN_DT_I8 (int8, CONST only: quantized weights of the
 *                    _Q8 products; offset 4-aligned like every constant), or
 *                    LNN_DT_F16 (IEEE 754 binary16, CONST only, not loop-
 *                    strided, every value finite: a float constant stored
 *                    in half the bytes; see "Float16 constants" below)
 *   1  u8   rank     0..LNN_MAX_RANK
 *   2  u8   region   LNN_REG_*
 *   3  u8   flags    LNN_TF_BATCH: dim 0 is the batch dimension; it is stored
 *                    as 1 and is the batch size of the run at run time.
 *                    Other bits zero.
 *   4  u32  dims[4]  dims[i] >= 1 for i < rank; zero for i >= rank
 *   20 u32  offset   CONST:  byte offset in the constants section (4-aligned)
 *                    STATE:  byte offset in the state part, laid out like
 *                            the batched arena (offset * batch), 4-aligned,
 *                            offset + row bytes <= state_row
 *                    ARENA:  byte offset; a batched tensor lives in the
 *                            batched part at offset * batch, an unbatched one
 *                            in the fixed part at offset (4-aligned)
 *                    INPUT / OUTPUT: the input / output number
 *   24 u32  stride   CONST only: bytes added to the address per iteration of
 *                    the innermost enclosing loop (a per-step table, e.g. dt);
 *                    zero for other regions
 *   28 u32  widened  LNN_DT_F16: the byte offset in the arena's fixed part
 *                    of the constant's float32 copy (below); zero otherwise
 *
 * Arena
 * -----
 *   [0, arena_fixed)                    unbatched intermediates
 *   [align64(arena_fixed), + row*batch) batched intermediates
 *   [state_base(batch), + state_row*batch) persistent state (STATE tensors)
 *   state_base(batch) = align64(align64(arena_fixed) + arena_row * batch)
 *   lnn_arena_size(batch) = state_base(batch) + state_row * batch
 *                           (= align64(arena_fixed) + arena_row * batch when
 *                           state_row is 0)
 *
 * Float16 constants
 * -----------------
 *   A DT_F16 tensor's values (2 bytes each) are in the constants section at
 *   its offset; lnn_init, after verifying the file, converts them exactly to
 *   float32 at [widened, widened + 4 * elements) in the arena's fixed part:
 *   4-aligned, inside [0, arena_fixed), overlapping no unbatched ARENA tensor
 *   and no other DT_F16 tensor's copy. Every instruction reads the tensor as
 *   that float32 copy: it is accepted wherever a float32 CONST operand is
 *   (not as an element-wise program or an int8 weight) and is never written.
 *   The file holds half the bytes, the RAM the float32 values (the weights
 *   are widened once, as TensorFlow Lite runs float16 models on CPUs).
 *
 * State
 * -----
 *   STATE tensors (region LNN_REG_STATE, always batched: row i belongs to
 *   the stream of batch row i) keep their values from one lnn_run to the
 *   next. lnn_init and lnn_reset zero them, and so does a run whose batch
 *   size differs from the previous run's (the rows would not line up). An
 *   instruction may read a STATE tensor before any instruction of the run
 *   writes it (it holds the previous run's value) and may write it; its
 *   aliasing rules are those of arena tensors.
 *
 * Code
 * ----
 *   32-bit instruction words, see lnn_opcodes.def for the layout and the ops.
 *   The program runs from the first word to the last; the stack is empty at
 *   the start and must be empty at the end. No instruction may read an ARENA
 *   or OUTPUT byte that no earlier instruction wrote (every loop body runs at
 *   least once, so "earlier" is program order). See vm/VERIFIER.md for every
 *   property lnn_init checks.
 *
 * Bundled test set (section TESTS, 4-aligned)
 * --------------------------------------------
 *   0 u32 magic "LNNT", 4 u32 count (>= 1), 8 u32 in_floats, 12 u32
 *   out_floats, 16 f32 max_abs_err (the tolerance of the smoke test), then
 *   count * in_floats float32 inputs (each case: every input in order, one
 *   batch row), then count * out_floats float32 expected outputs.
 *   size == 20 + 4 * count * (in_floats + out_floats). in_floats / out_floats
 *   are the element counts of one batch row of all inputs / outputs.
 *
 * Element-wise programs (the operand p of EWISEn)
 * ------------------------------------------------
 *   A u32 CONST tensor of rank 1, not loop-strided, of exactly 1 + L words:
 *     word 0      bits 0-7 n (== the n of EWISEn), bits 8-15 L (the number of
 *                 instructions, 1..LNN_EW_MAX_INSNS), bits 16-23 R (registers,
 *                 0..LNN_EW_MAX_REGS), bits 24-31 zero
 *     word 1 + i  bits 0-7 op, the lnn_opcodes.def code of ADD, SUB, MUL, DIV,
 *                 NEG, EXP, SIGMOID, TANH or RELU; bits 8-15 d; bits 16-23 a;
 *                 bits 24-31 b
 *   a and b name values: 0..n-1 the operands (in push order), n + r the
 *   register r, which an earlier instruction must have written; b is 0 for
 *   the one-operand ops. Instruction i < L-1 writes register d (< R); the
 *   last one writes the destination tensor (its d is 0).
 *   For every element e of the destination, each operand gives its value at
 *   e: an operand of the destination's shape its element e, a row (an
 *   unbatched tensor whose dims, leading 1s aside, are the destination's
 *   last dims) its element e modulo its size, a single value (unbatched, 1
 *   element) that value. Each instruction rounds to float32 exactly as the
 *   op of the same name, so a program gives the bits of the sequence of ops.
 */
#ifndef LNN_FORMAT_H
#define LNN_FORMAT_H

#define LNN_MAGIC "LNNB"
#define LNN_VERSION_MAJOR 1
#define LNN_VERSION_MINOR 2

#define LNN_HEADER_SIZE 64u
#define LNN_SECTION_ENTRY_SIZE 16u
#define LNN_TENSOR_ENTRY_SIZE 32u
#define LNN_CONST_ALIGN 64u
#define LNN_ARENA_ALIGN 64u

/* Resource limits: a file beyond any of them is rejected. */
#define LNN_MAX_SECTIONS 8u
#define LNN_MAX_TENSORS 65535u
#define LNN_MAX_IO 16u
#define LNN_MAX_RANK 4u
#define LNN_MAX_STACK 16u
#define LNN_MAX_LOOP_DEPTH 4u
#define LNN_MAX_ELEMENTS (1u << 26) /* per tensor (per batch row if batched) */
#define LNN_MAX_DSTS 8u      /* destinations of one instruction (format DSTN) */
#define LNN_EW_MAX_INSNS 32u /* instructions of an element-wise program */
#define LNN_EW_MAX_REGS 8u   /* its registers */
#define LNN_MAX_CODE_WORDS (1u << 16) /* instruction words in the code section */
#define LNN_MAX_TRIP_PRODUCT (1u << 20) /* product of the trip counts of nested loops */
#define LNN_MAX_STEPS (1u << 24) /* instructions executed by one lnn_run */
#define LNN_MAX_WRITE_RANGES 64u /* disjoint written arena ranges the verifier tracks */
#define LNN_MAX_STATE_ROW (1u << 28) /* state bytes per batch row: one row of LNN_MAX_ELEMENTS floats */

enum {
    LNN_SEC_TENSORS = 1,
    LNN_SEC_CONSTS = 2,
    LNN_SEC_CODE = 3,
    LNN_SEC_NAMES = 4,
    LNN_SEC_META = 5,
    LNN_SEC_TESTS = 6
};

enum { LNN_DT_F32 = 1, LNN_DT_U32 = 2, LNN_DT_I8 = 3, LNN_DT_F16 = 4 };

enum {
    LNN_REG_CONST = 0,
    LNN_REG_ARENA = 1,
    LNN_REG_INPUT = 2,
    LNN_REG_OUTPUT = 3,
    LNN_REG_STATE = 4
};

enum { LNN_TF_BATCH = 1 };

#endif
