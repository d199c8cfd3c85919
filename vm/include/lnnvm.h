/*
 * lnnvm.h - public API of the lnnedge virtual machine.
 *
 * The VM runs one verified .lnnb model (see lnn_format.h) out of two caller
 * buffers: the model file itself and an arena for intermediates (and the
 * persistent state of a stateful model). It never
 * allocates, never prints, and never fails at run time on a model that
 * lnn_init accepted except for a bad batch size or bad arguments.
 *
 *   size_t need = lnn_arena_size(buf, len, max_batch);
 *   lnn_model m;
 *   lnn_status s = lnn_init(&m, buf, len, arena, need);
 *   if (s != LNN_OK) report(lnn_status_name(s), lnn_error_offset(&m));
 *   s = lnn_run(&m, inputs, outputs, batch);
 *
 * The model keeps pointers into buf and arena: both must outlive it and must
 * not be modified while it is in use. lnn_model may be copied only together
 * with a fresh lnn_init; treat its fields as private. One lnn_run at a time
 * per model (runs share the arena); models with separate arenas may run
 * concurrently. Input and output buffers must not overlap each other.
 *
 * State: a stateful model (header state_row > 0) keeps its STATE tensors in
 * the arena from one lnn_run to the next, one state per batch row (stream).
 * It starts from zero state after lnn_init and lnn_reset, and whenever a
 * run's batch differs from the previous run's (the rows would not line up):
 * that run zeroes the state before it starts.
 *
 * Targets: little-endian with IEEE-754 floats (the file's constants are used
 * in place). No allocation, no stdio, only <string.h> and <math.h> (fabsf,
 * copysignf) from the C library: exp, sigmoid and tanh are the VM's own.
 *
 * Kernels: lnn_init picks the kernel set once (lnn_isa): in an x86 build
 * for ISA=auto the best of avx512 / avx2 / sse3 / scalar that the processor
 * supports (avx512: AVX-512 F/BW/VL/DQ in cpuid and the ZMM state enabled by
 * the OS); in a build for one ISA (sse3, avx2, avx512, neon) that set, and
 * LNN_E_CPU on a
 * processor without it. lnn_use_kernels switches a model to another
 * compiled-in set (for tests and comparisons).
 */
#ifndef LNNVM_H
#define LNNVM_H

#include <stddef.h>
#include <stdint.h>

#include "lnn_format.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LNN_VM_VERSION "0.1.0"

/* A selective build (python/lnnedge/opselect.py) passes its generated header
 * as -DLNN_OPS_HEADER="path" to every file that includes this one: the ops
 * the image links (internal.h, LNN_OP_LINKED) and the run plan's size for
 * its models (LNN_PLAN_STEPS, LNN_PLAN_REFS below), so that struct
 * lnn_model is sized by the models, not by maximums. */
#ifdef LNN_OPS_HEADER
#include LNN_OPS_HEADER
#endif

typedef enum {
#define ST(name, code, message) LNN_##name = code,
#include "lnn_status.def"
#undef ST
} lnn_status;

struct lnn_kernels; /* kernel table, private to the VM */

/* Called by lnn_run after every compute instruction (not PUSH, DROP, LOOP,
 * END) with the instruction's index in the code section (the pc that
 * `lnnvm disasm` prints), its destination tensor, and that tensor's data
 * for this run: count floats, all rows of a batched tensor. data is only
 * valid during the call. */
typedef void (*lnn_trace_fn)(void *ctx, uint32_t pc, uint32_t tensor,
                             const float *data, uint32_t count);

/* The run plan (private, see interp.c): lnn_init compiles the verified code
 * into steps whose operands are resolved tensor references, so lnn_run
 * executes no PUSH or DROP and plans no shape. A model with more steps or
 * references than these limits runs without a plan (the same results,
 * more work per instruction). Both limits change sizeof(lnn_model): build
 * the library and its users with the same values. */
#ifndef LNN_PLAN_STEPS
#define LNN_PLAN_STEPS 32
#endif
#ifndef LNN_PLAN_REFS
#define LNN_PLAN_REFS 96
#endif

typedef struct {
    uint32_t offset; /* byte offset in its region; INPUT / OUTPUT: the number */
    uint32_t stride; /* CONST: bytes per iteration of the loop at depth */
    uint32_t elems;  /* elements, per batch row if batched */
    uint32_t aux;    /* per op */
    uint16_t tensor;
    uint8_t kind;  /* region and batched flag */
    uint8_t depth; /* loop depth of the PUSH (0: outside loops) */
} lnn_plan_ref;

typedef struct {
    uint32_t pc;  /* the instruction */
    uint32_t ref; /* its references: ndst destinations, then nsrc operands */
    uint8_t op, a, ndst, nsrc;
    uint32_t depth; /* loops around the instruction */
    uint32_t p[3];  /* per op */
} lnn_plan_step;

/* Fixed size, holds no pointer to memory it owns. Fields are private. */
typedef struct lnn_model {
    const uint8_t *buf;     /* the model file */
    const uint8_t *tensors; /* tensor table inside buf */
    const uint8_t *consts;  /* constants section inside buf */
    const uint8_t *code;    /* code section inside buf */
    const uint8_t *tests;   /* test-set section inside buf, NULL: none */
    uint8_t *arena;
    const struct lnn_kernels *kernels;
    lnn_trace_fn trace; /* NULL: no tracing */
    void *trace_ctx;
#ifdef LNN_PROFILE
    struct lnn_profile *profile; /* NULL: not profiling (lnn_set_profile) */
#endif
    size_t len;
    size_t arena_len;
    size_t batch_base; /* align64(arena_fixed): start of the batched part */
    uint32_t consts_size;
    uint32_t code_words;
    uint32_t tests_size;
    uint32_t tests_entry; /* file offset of the TESTS section's table entry */
    uint32_t num_tensors;
    uint32_t arena_fixed;
    uint32_t arena_row;
    uint32_t state_row;   /* bytes of state per batch row, 0: stateless */
    uint32_t state_batch; /* batch of the state in the arena; 0: none yet
                           * (the next run starts from zero state) */
    uint32_t max_batch;
    uint32_t max_row_bytes; /* largest batched tensor row, in bytes */
    uint32_t num_inputs;
    uint32_t num_outputs;
    uint16_t input_tensor[LNN_MAX_IO];  /* tensor index of input i */
    uint16_t output_tensor[LNN_MAX_IO]; /* tensor index of output i */
    uint32_t error_offset;
    uint32_t status; /* lnn_status of the last lnn_init */
    uint32_t stage;  /* how far lnn_init got (private) */
    uint32_t ready;  /* LNN_READY_ magic once lnn_init succeeded */
    uint32_t plan_steps; /* 0: no plan, lnn_run interprets the code */
    uint32_t plan_refs;
    uint32_t use_plan;   /* lnn_use_plan */
    uint64_t max_work;   /* the limit lnn_init verified against (lnn_limits) */
    uint64_t work;       /* work of one run per batch row (lnn_limits) */
    union { /* the plan is built after verification: its room is scratch before */
        struct {
            lnn_plan_step step[LNN_PLAN_STEPS];
            lnn_plan_ref ref[LNN_PLAN_REFS];
        };
        uint16_t plan_scratch[(sizeof(lnn_plan_step) * LNN_PLAN_STEPS +
                               sizeof(lnn_plan_ref) * LNN_PLAN_REFS) / 2];
    };
    float *ptr[LNN_PLAN_REFS]; /* each reference's base address in this run */
} lnn_model;

/* sizeof(lnn_model), for bindings that allocate it themselves. */
size_t lnn_model_size(void);

/* Verifies the whole model (header, CRC, sections, tensors, code) and binds
 * it to the arena. buf and arena must be 4-byte aligned (64 recommended).
 * From here on the arena belongs to the model: lnn_init writes the float32
 * copies of its float16 constants there and the state lives there, so the
 * caller leaves it alone while the model is in use (the buffer too).
 * On failure returns the status and records the byte offset in the file of
 * the offending field or instruction (lnn_error_offset). */
lnn_status lnn_init(lnn_model *m, const void *buf, size_t len, void *arena,
                    size_t arena_len);

/* Resource limits a model is verified against (lnn_init_limits); a field of
 * 0 takes its default. lnn_init uses the defaults.
 *
 * max_work: the work of one run per batch row, which the verifier computes
 * from the code: per compute instruction the multiply-adds of a product
 * (LINEAR.., CONV2D, MATMUL: rows x weight elements), element operations
 * otherwise (the largest operand or destination; EWISEn: times its
 * instructions), times the trip counts of the loops around it; a batched
 * tensor counts one row. Above it: LNN_E_WORK at the instruction where the
 * sum passes it (a run of B rows does at most B times the work). Like a
 * WebAssembly runtime's fuel, it bounds the time of a run before it starts.
 *
 * max_arena: bytes of arena one batch row needs (lnn_arena_size(buf, len,
 * 1)), checked right after the header: LNN_E_ARENA_LIMIT at the header
 * field that passes it, before the caller need allocate anything (call
 * lnn_init_limits with no arena first, as the hosted runner does: it then
 * fails with LNN_E_ARENA_LIMIT, or LNN_E_ARENA for a valid file).
 *
 * scratch: memory lnn_init may use while it verifies (4-byte aligned; it
 * holds 2 bytes per tensor: the sorts of the float16 constants' copies and
 * of the float32 constants); the caller's again when lnn_init returns.
 * With LNN_SCRATCH_SIZE bytes those checks take O(n log n) for n tensors;
 * with less, or none, lnn_init uses what it has (at least the lnn_model's
 * own plan area: about 1,400 tensors) in blocks: O(n^2 / block). It never
 * writes the arena before the model is accepted. */
typedef struct {
    uint64_t max_work;
    uint64_t max_arena;
    void *scratch;
    size_t scratch_len;
} lnn_limits;

/* Scratch bytes for the O(n log n) checks of any model (lnn_limits). */
#define LNN_SCRATCH_SIZE (2u * LNN_MAX_TENSORS)

/* The defaults, generous for a hosted machine: 2^34 operations per row (a
 * few seconds at most) and 1 GiB; a board build passes its own budget with
 * -DLNN_DEFAULT_MAX_WORK=... (vm/firmware/Makefile, MAX_WORK). */
#ifndef LNN_DEFAULT_MAX_WORK
#define LNN_DEFAULT_MAX_WORK ((uint64_t)1 << 34)
#endif
#ifndef LNN_DEFAULT_MAX_ARENA
#define LNN_DEFAULT_MAX_ARENA ((uint64_t)1 << 30)
#endif

/* lnn_init against the limits (NULL: the defaults). */
lnn_status lnn_init_limits(lnn_model *m, const void *buf, size_t len, void *arena,
                           size_t arena_len, const lnn_limits *limits);

/* Work of one run per batch row of a model lnn_init accepted (lnn_limits),
 * 0 if it is not ready. */
uint64_t lnn_work(const lnn_model *m);

/* Arena bytes needed to run batch rows, read from the header (which is
 * checked, but not the CRC nor the rest of the file): align64(arena_fixed)
 * + arena_row * batch for a stateless model; with state, the state part
 * after it: align64(align64(arena_fixed) + arena_row * batch) + state_row *
 * batch. 0 if the header is invalid or the size does not fit in size_t. */
size_t lnn_arena_size(const void *buf, size_t len, uint32_t batch);

/* Runs the model on batch rows. inputs[i] / outputs[i] point to the
 * float data of input / output i: batch rows of lnn_*_row_elems floats for a
 * batched tensor, the whole tensor otherwise. Pointers must be 4-aligned.
 * A stateful model reads the state the previous run left and leaves its
 * own; a batch other than the previous run's starts from zero state.
 * Fails only with LNN_E_ARG, LNN_E_BATCH or LNN_E_NOT_READY (and then
 * leaves the state as it was); a checked build (LNN_CHECKED, interp.c)
 * also with LNN_E_CHECKED, the run stopped before a kernel call whose
 * ranges were outside their regions. */
lnn_status lnn_run(lnn_model *m, const float *const *inputs,
                   float *const *outputs, uint32_t batch);

/* Called by lnn_run_rows after each chunk it ran: the chunk's index (0
 * first) and its rows. */
typedef void (*lnn_chunk_fn)(void *ctx, size_t chunk, uint32_t rows);

/* Runs rows rows as consecutive lnn_run calls of chunk = min(batch, rows)
 * rows each (the last one may hold fewer), in order; no allocation.
 * inputs[i] / outputs[i] as for lnn_run but holding all rows: chunk c runs
 * rows [c * chunk, ...) of every batched input and output; an unbatched
 * input is passed whole to every chunk, and an unbatched output is written
 * by every chunk (the last one's values stay).
 * A stateful model takes the rows as time steps: every chunk has chunk
 * rows, so each lnn_run continues the chunk streams from the state the
 * previous chunk left (row t * chunk + s is stream s at step t), and rows
 * must be a multiple of chunk. The first chunk continues from the state the
 * model holds (call lnn_reset first for a pass from zero state).
 * on_chunk (NULL: none) is called with ctx after every chunk's lnn_run
 * succeeded (for timing or progress; it must not touch the model).
 * Fails before any run with LNN_E_ARG (NULL m, inputs or outputs, rows 0),
 * LNN_E_NOT_READY, LNN_E_BATCH (batch 0, chunk above lnn_max_batch, or a
 * stateful model and rows not a multiple of chunk); otherwise returns the
 * status of the first lnn_run that failed (the chunks before it are done). */
lnn_status lnn_run_rows(lnn_model *m, const float *const *inputs, float *const *outputs,
                        size_t rows, uint32_t batch, lnn_chunk_fn on_chunk, void *ctx);

/* Zeroes the persistent state of a stateful model: the next lnn_run starts
 * every stream from zero state (the zeroing is done by that run, for its
 * batch, so lnn_reset itself costs nothing). A no-op for a stateless model.
 * LNN_E_ARG for NULL, LNN_E_NOT_READY if lnn_init did not succeed. */
lnn_status lnn_reset(lnn_model *m);

/* Makes the model run on the compiled-in kernel set named isa ("scalar",
 * "neon", "sse3", "avx2", "avx512"). LNN_E_CPU if that set is not compiled in or the
 * processor lacks it, LNN_E_NOT_READY / LNN_E_ARG as lnn_run. */
lnn_status lnn_use_kernels(lnn_model *m, const char *isa);

/* Name of the i-th kernel set compiled in (best first, "scalar" last), NULL
 * for i past the end. Every one of them may be passed to lnn_use_kernels
 * if the processor supports it. */
const char *lnn_kernel_set_name(uint32_t i);

/* Runs the model from its plan (on = 1, the default after lnn_init when the
 * model fits the plan's limits) or by interpreting the code instruction by
 * instruction (on = 0: for tests; both give the same results). Returns
 * whether the plan is in use, 0 for a model without one. */
int lnn_use_plan(lnn_model *m, int on);

/* Installs (fn) or removes (NULL) the trace hook of a model; lnn_init
 * clears it, so call this after lnn_init. */
void lnn_set_trace(lnn_model *m, lnn_trace_fn fn, void *ctx);

#ifdef LNN_PROFILE
/* The profiling build (-DLNN_PROFILE, `make PROFILE=1`; never the normal
 * one, whose interpreter has no hook at all): lnn_run reads the clock the
 * platform provides (lnn_profile_clock: the runner's CLOCK_MONOTONIC in ns,
 * the firmware's cycle counter) at the start of every step it executes
 * (every instruction but PUSH and DROP, which the plan compiles away, and
 * each loop iteration's LOOP / END) and adds the time until the next step
 * starts (or the run ends) to the earlier step's pc: counter[pc].ticks, and
 * counter[pc].calls += 1. Each of those intervals also holds one hook's own
 * cost: lnn_profile_overhead measures it, to be subtracted per call. The
 * counters are the caller's memory (one per code word, lnn_code_words):
 * nothing is allocated. The clock is read as 32 bits: an interval must be
 * shorter than one wrap (4.29 s in ns). */
typedef struct {
    uint64_t ticks;
    uint64_t calls;
} lnn_profile_counter;

typedef struct lnn_profile {
    lnn_profile_counter *counter; /* [count], zeroed by the caller */
    uint32_t count;
    uint32_t last_pc; /* private: the step whose time runs, LNN_PROFILE_NONE */
    uint32_t last;    /* private: the clock when it started */
} lnn_profile;

#define LNN_PROFILE_NONE 0xFFFFFFFFu

uint32_t lnn_profile_clock(void); /* provided by the runner / the firmware */

/* Profiles the model's next runs into p (NULL: stops). LNN_E_ARG when
 * p->count is below the model's code words; lnn_init clears it. */
lnn_status lnn_set_profile(lnn_model *m, lnn_profile *p);

/* Instructions in the model's code section (the pcs a profile counts). */
uint32_t lnn_code_words(const lnn_model *m);

/* Clock ticks of marks back-to-back hook calls (the hook's own cost per
 * interval is that / marks). */
uint64_t lnn_profile_overhead(uint32_t marks);
#endif

/* The bundled test set (section TESTS, lnn_format.h) of a model, verified
 * by lnn_init: in_floats and out_floats are the floats of one batch row of
 * all inputs / all outputs, in input / output order. The arrays lie inside
 * the model buffer (nothing is copied). */
typedef struct {
    uint32_t count;        /* cases, >= 1 */
    uint32_t in_floats;    /* per case: every input's row, in order */
    uint32_t out_floats;   /* per case: every output's row, in order */
    float max_abs_err;     /* the tolerance of the smoke test */
    const float *inputs;   /* count * in_floats */
    const float *expected; /* count * out_floats */
} lnn_tests;

/* Fills *t with the test set of a model that passed lnn_init and returns 1;
 * returns 0 (and zeroes *t) if the model has none or is not ready. */
int lnn_get_tests(const lnn_model *m, lnn_tests *t);

uint32_t lnn_error_offset(const lnn_model *m);
uint32_t lnn_max_batch(const lnn_model *m); /* UINT32_MAX if arena_row and state_row are 0 */
uint32_t lnn_num_inputs(const lnn_model *m);
uint32_t lnn_num_outputs(const lnn_model *m);
uint32_t lnn_input_row_elems(const lnn_model *m, uint32_t i);
uint32_t lnn_output_row_elems(const lnn_model *m, uint32_t i);
int lnn_input_batched(const lnn_model *m, uint32_t i);
int lnn_output_batched(const lnn_model *m, uint32_t i);

const char *lnn_status_str(lnn_status s);  /* fixed message */
const char *lnn_status_name(lnn_status s); /* "E_CRC" */
const char *lnn_isa(const lnn_model *m);   /* kernel set chosen at init */
const char *lnn_version(void);             /* LNN_VM_VERSION */

#ifdef __cplusplus
}
#endif

#endif
