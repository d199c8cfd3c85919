/*
 * lnnvm.c - the hosted runner of the lnnedge VM.
 *
 *   lnnvm info MODEL
 *   lnnvm verify MODEL
 *   lnnvm disasm MODEL
 *   lnnvm run MODEL --in IN.f32 [--in ...] --out OUT.f32 [--out ...]
 *             [--batch B] [--repeat R] [--threads T] [--kernels ISA]
 *             [--no-plan] [--trace FILE]
 *   lnnvm test MODEL [--kernels ISA] [--no-plan]
 *   lnnvm stream MODEL [--kernels ISA]
 *   lnnvm profile MODEL [--runs R] [--kernels ISA] [--no-plan]   (PROFILE=1 builds)
 *
 * Every command takes --max-work N and --max-arena BYTES (lnn_limits, 0 or
 * absent: the VM's defaults, LNN_DEFAULT_MAX_WORK operations per run per
 * batch row and LNN_DEFAULT_MAX_ARENA bytes): a model above either is
 * refused (E_WORK, E_ARENA_LIMIT) before any arena is allocated, and run /
 * test refuse a --batch whose arena would pass --max-arena.
 *
 * --kernels ISA (or the environment variable LNNVM_KERNELS) runs on that
 * compiled-in kernel set instead of the one lnn_init chose. --trace FILE
 * writes one record per compute instruction executed (one per destination):
 * little-endian u32 pc, u32 tensor, u32 count, then count float32 (the
 * destination's data). --no-plan interprets the code instruction by
 * instruction instead of running the plan lnn_init made (lnn_use_plan; the
 * same results). --threads T splits the N rows into T contiguous slices run
 * by T threads at once, each with its own lnn_model and arena on the same
 * model bytes (the VM itself knows nothing of threads); each slice is run in
 * chunks of --batch rows. A stateful model (state_row > 0) takes its chunks
 * as time steps instead: chunk c holds step c of the --batch streams, the
 * chunks run in order on one thread, and each repeat starts from zero state
 * (lnn_reset), so the outputs written are those of one pass from zero.
 *
 * stream runs one batch-1 step per line of standard input (the floats of
 * every input in order, or the word reset) and prints the outputs' floats
 * on one line each, flushed at once: a stateful model driven step by step.
 *
 * test runs the model's bundled test set (section TESTS), the on-device
 * smoke test: one line per failing case, then
 *   tests: N cases, max_abs_err E, tolerance T, PASSED|FAILED
 *
 * Exit status: 0 ok (test: PASSED), 2 usage or I/O error (including input
 * files of the wrong size, and test on a model without a test set), 3
 * invalid model, 4 test FAILED, 1 unexpected run failure. Errors are one
 * line on stderr. Memory is allocated at setup only; the timed run path
 * calls nothing but lnn_run_rows (lnn_run per chunk) and, from its per-chunk
 * hook, clock_gettime.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "lnn_disasm.h"
#include "lnnvm.h"

/* -DLNN_TARGET_NAME=\"rpi4\": the board or target this runner was built for */
#ifndef LNN_TARGET_NAME
#define LNN_TARGET_NAME "unknown"
#endif

enum { EXIT_RUN = 1, EXIT_USAGE = 2, EXIT_MODEL = 3, EXIT_TEST_FAILED = 4 };

/* Reports an error and ends the process at once: what is still allocated
 * goes with it (_Exit: no leak report for an error exit; normal returns
 * free everything). */
static void fail(int code, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fputs("lnnvm: error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    _Exit(code);
}

/* The usage text: on stdout with exit 0 when asked for (--help), on stderr
 * with EXIT_USAGE after a mistake. */
static void usage_to(FILE *out, int code)
{
    fputs("usage: lnnvm [--max-work N] [--max-arena BYTES] COMMAND ... (also after COMMAND)\n"
          "       lnnvm info MODEL\n"
          "       lnnvm verify MODEL\n"
          "       lnnvm disasm MODEL\n"
          "       lnnvm run MODEL --in IN.f32 [--in ...] --out OUT.f32 [--out ...]\n"
          "                 [--batch B] [--repeat R] [--threads T] [--kernels ISA]\n"
          "                 [--no-plan] [--trace FILE]\n"
          "       lnnvm test MODEL [--kernels ISA] [--no-plan]\n"
          "       lnnvm stream MODEL [--kernels ISA]   (rows on stdin, one step per line)\n"
          "       lnnvm --version\n"
          "       lnnvm --help\n"
          "MODEL or IN may be '-' for standard input (at most one of them).\n",
          out);
    exit(code);
}

static void usage(void)
{
    usage_to(stderr, EXIT_USAGE);
}

/* 64-byte aligned, zeroed (outputs a model does not write, and arena bytes
 * read before written, are then 0 and runs are reproducible), size rounded
 * up to a multiple of 64, never empty. */
static void *alloc64(size_t size, const char *what)
{
    if (size > SIZE_MAX - 64)
        fail(EXIT_USAGE, "cannot allocate %zu bytes for %s", size, what);
    size_t n = (size + 63) & ~(size_t)63;
    if (n == 0)
        n = 64;
    void *p = aligned_alloc(64, n);
    if (!p)
        fail(EXIT_USAGE, "cannot allocate %zu bytes for %s", size, what);
    memset(p, 0, n);
    return p;
}

typedef struct {
    const char *path;
    unsigned char *data; /* 64-byte aligned */
    size_t len;
} blob;

static int stdin_used;

/* Reads a whole file (or stdin for "-") into 64-byte aligned memory. */
static void load_file(const char *path, blob *b)
{
    FILE *f = stdin;
    if (strcmp(path, "-") == 0) {
        if (stdin_used++)
            fail(EXIT_USAGE, "'-' (standard input) given more than once");
    } else if (!(f = fopen(path, "rb"))) {
        fail(EXIT_USAGE, "%s: cannot open: %s", path, strerror(errno));
    }
    size_t cap = 1 << 16, len = 0;
    unsigned char *tmp = malloc(cap);
    if (!tmp)
        fail(EXIT_USAGE, "%s: out of memory", path);
    for (;;) {
        if (len == cap) {
            unsigned char *t2 = cap <= SIZE_MAX / 2 ? realloc(tmp, cap * 2) : NULL;
            if (!t2)
                fail(EXIT_USAGE, "%s: out of memory", path);
            tmp = t2;
            cap *= 2;
        }
        size_t got = fread(tmp + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    if (ferror(f))
        fail(EXIT_USAGE, "%s: read error: %s", path, strerror(errno));
    if (f != stdin)
        fclose(f);
    b->path = path;
    b->len = len;
    b->data = alloc64(len, path);
    if (len)
        memcpy(b->data, tmp, len);
    free(tmp);
}

/* --max-work, --max-arena (0: the VM's defaults); the scratch of lnn_init's
 * sorts (LNN_SCRATCH_SIZE, set up in main) */
static lnn_limits limits;

typedef struct {
    blob file;
    void *arena;
    size_t arena_len;
    lnn_model m;
    lnn_status st;
} model;

/* Verifies the file first with no arena (lnn_init checks the arena last,
 * so LNN_E_ARENA means everything else is valid, including one row's arena
 * within --max-arena), then allocates the arena for batch rows, if that is
 * within --max-arena too, and binds it: a header never makes the runner
 * allocate more than the limit. */
static void model_init(model *md, uint32_t batch)
{
    free(md->arena);
    md->arena = NULL;
    md->arena_len = 0;
    md->st = lnn_init_limits(&md->m, md->file.data, md->file.len, NULL, 0, &limits);
    if (md->st != LNN_E_ARENA)
        return;
    md->arena_len = lnn_arena_size(md->file.data, md->file.len, batch);
    const uint64_t max_arena = limits.max_arena ? limits.max_arena : LNN_DEFAULT_MAX_ARENA;
    if (md->arena_len > max_arena)
        fail(EXIT_USAGE, "%s: E_ARENA_LIMIT: the arena for %u rows is %zu bytes, above the limit %llu "
             "(--max-arena; fewer rows with --batch)", md->file.path, batch, md->arena_len,
             (unsigned long long)max_arena);
    md->arena = alloc64(md->arena_len, "the arena");
    md->st = lnn_init_limits(&md->m, md->file.data, md->file.len, md->arena, md->arena_len,
                             &limits);
}
static void model_close(model *md)
{
    free(md->arena);
    free(md->file.data);
    md->arena = NULL;
    md->file.data = NULL;
}

static void model_error(const model *md)
{
    fprintf(stderr, "lnnvm: error: %s: %s at byte %u: %s\n", md->file.path,
            lnn_status_name(md->st), lnn_error_offset(&md->m),
            lnn_status_str(md->st));
}

static void model_open(model *md, const char *path)
{
    memset(md, 0, sizeof *md);
    load_file(path, &md->file);
    model_init(md, 1);
}

static void open_or_die(model *md, const char *path)
{
    model_open(md, path);
    if (md->st != LNN_OK) {
        model_error(md);
        model_close(md);
        exit(EXIT_MODEL); /* nothing else allocated yet */
    }
}

/* ---- info / verify / disasm --------------------------------------------- */

static void kernel_sets(char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    const char *name;
    for (uint32_t i = 0; (name = lnn_kernel_set_name(i)) != NULL; i++) {
        int n = snprintf(out + len, cap - len, "%s%s", i ? "," : "", name);
        if (n < 0 || (size_t)n >= cap - len)
            break;
        len += (size_t)n;
    }
}

static int cmd_info(const char *path)
{
    model md;
    open_or_die(&md, path);
    const lnn_model *m = &md.m;
    char line[256];
    printf("version: %u.%u\n", (unsigned)lnn_rd16(m->buf + LNN_H_VERSION_MAJOR),
           (unsigned)lnn_rd16(m->buf + LNN_H_VERSION_MINOR));
    printf("vm_version: %s\n", lnn_version());
    printf("file_size: %zu\n", md.file.len);
    printf("tensors: %u\n", m->num_tensors);
    printf("code_words: %u\n", m->code_words);
    printf("consts_size: %u\n", m->consts_size);
    printf("inputs: %u\n", lnn_num_inputs(m));
    for (uint32_t i = 0; i < lnn_num_inputs(m); i++) {
        lnn_describe_shape(m, m->input_tensor[i], line, sizeof line);
        printf("input%u: %s\n", i, line);
    }
    printf("outputs: %u\n", lnn_num_outputs(m));
    for (uint32_t i = 0; i < lnn_num_outputs(m); i++) {
        lnn_describe_shape(m, m->output_tensor[i], line, sizeof line);
        printf("output%u: %s\n", i, line);
    }
    lnn_tests ts;
    printf("tests: %u\n", lnn_get_tests(m, &ts) ? ts.count : 0u); /* bundled test cases */
    printf("arena_fixed: %u\n", m->arena_fixed);
    printf("arena_row: %u\n", m->arena_row);
    printf("state_row: %u\n", m->state_row);
    printf("work: %llu\n", (unsigned long long)lnn_work(m)); /* per run per batch row */
    /* run plan steps (0: the model runs without a plan, over the build's
     * LNN_PLAN_STEPS / LNN_PLAN_REFS) and sizeof(lnn_model) */
    printf("plan_steps: %u\n", m->plan_steps);
    printf("model_struct: %zu\n", lnn_model_size());
    printf("isa: %s\n", lnn_isa(m));
    kernel_sets(line, sizeof line);
    printf("kernels: %s\n", line);
    printf("target: %s\n", LNN_TARGET_NAME);
    printf("arch: %s\n", LNN_ARCH_NAME);
    model_close(&md);
    return 0;
}

static int cmd_verify(const char *path)
{
    model md;
    open_or_die(&md, path);
    puts("ok");
    model_close(&md);
    return 0;
}

/* Lists the code; a model whose code failed verification is still listed
 * (its tensors are valid), the failing instruction marked. */
static int cmd_disasm(const char *path)
{
    model md;
    model_open(&md, path);
    if (md.st != LNN_OK && md.m.stage < LNN_STAGE_TENSORS) {
        model_error(&md);
        model_close(&md);
        return EXIT_MODEL;
    }
    const lnn_model *m = &md.m;
    const uint32_t code_off = (uint32_t)(m->code - m->buf);
    uint32_t depth = 0;
    char line[512];
    for (uint32_t pc = 0; pc < m->code_words; pc++) {
        lnn_disasm_insn(m, pc, &depth, line, sizeof line);
        if (md.st != LNN_OK && lnn_error_offset(m) == code_off + 4 * pc)
            printf("%s   <-- %s\n", line, lnn_status_name(md.st));
        else
            printf("%s\n", line);
    }
    const int rc = md.st == LNN_OK ? 0 : EXIT_MODEL;
    if (rc) {
        fflush(stdout);
        model_error(&md);
    }
    model_close(&md);
    return rc;
}

/* ---- run ----------------------------------------------------------------------- */

/* --kernels ISA (or LNNVM_KERNELS): NULL or "" keeps lnn_init's choice. */
static void use_kernels_or_die(lnn_model *m, const char *kernels)
{
    if (!kernels || !*kernels)
        return;
    const lnn_status ks = lnn_use_kernels(m, kernels);
    if (ks != LNN_OK) {
        char sets[256];
        kernel_sets(sets, sizeof sets);
        fail(EXIT_USAGE, "--kernels %s: %s: %s (compiled in: %s)", kernels,
             lnn_status_name(ks), lnn_status_str(ks), sets);
    }
}

/* Before the first lnn_run of run and test: the arena for chunk rows (the
 * file re-verified with it when chunk > 1), the kernel set and the plan. */
static void prepare_or_die(model *md, uint32_t chunk, const char *path, const char *kernels,
                           int no_plan)
{
    if (chunk > 1) {
        model_init(md, chunk);
        if (md->st != LNN_OK) {
            model_error(md);
            fflush(stderr);
            _Exit(EXIT_MODEL);
        }
    }
    if (lnn_max_batch(&md->m) < chunk)
        fail(EXIT_USAGE, "%s: the arena cannot hold %u rows", path, chunk);
    use_kernels_or_die(&md->m, kernels);
    if (no_plan)
        lnn_use_plan(&md->m, 0);
}

static unsigned long parse_count(const char *opt, const char *s, unsigned long max)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v == 0 || v > max || s[0] == '-')
        fail(EXIT_USAGE, "%s: expected an integer in 1..%lu, got '%s'", opt, max, s);
    return v;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The trace file: records go straight from the hook into a stdio buffer
 * allocated at setup (setvbuf), so the run path allocates nothing. */
typedef struct {
    FILE *f;
    int failed;
} trace_file;

static void trace_write(void *ctx, uint32_t pc, uint32_t tensor,
                        const float *data, uint32_t count)
{
    trace_file *t = ctx;
    const uint32_t head[3] = {pc, tensor, count}; /* the VM's targets are LE */
    if (fwrite(head, sizeof head, 1, t->f) != 1 ||
        (count && fwrite(data, sizeof(float), count, t->f) != count))
        t->failed = 1;
}

/* One thread's share of a run: rows [start, end) of every batched input and
 * output, run by lnn_run_rows in chunks of chunk rows on its own model
 * (lnn_run is one call at a time per model). */
typedef struct {
    lnn_model *m;
    uint32_t chunk;
    size_t rows;
    const float *in[LNN_MAX_IO]; /* the slice's first row (unbatched: the tensor) */
    float *out[LNN_MAX_IO];
    double *lat; /* one per chunk */
    size_t nlat;
    double t0; /* when the current chunk started */
    lnn_status st;
} slice;

/* lnn_run_rows's hook: the chunk's time per row */
static void slice_chunk_done(void *ctx, size_t chunk, uint32_t rows)
{
    (void)chunk;
    slice *w = ctx;
    const double t1 = now_us();
    w->lat[w->nlat++] = (t1 - w->t0) / rows;
    w->t0 = now_us();
}

static void *run_slice(void *arg)
{
    slice *w = arg;
    w->nlat = 0;
    w->st = LNN_OK;
    if (w->rows == 0) /* more threads than whole slices */
        return NULL;
    w->t0 = now_us();
    w->st = lnn_run_rows(w->m, w->in, w->out, w->rows, w->chunk, slice_chunk_done, w);
    return NULL;
}

/* The options of run. */
typedef struct {
    const char *model_path, *in_path[LNN_MAX_IO], *out_path[LNN_MAX_IO];
    const char *kernels, *trace_path;
    uint32_t nin, nout;
    unsigned long batch, repeat, threads;
    int no_plan;
} run_args;

static void run_parse(int argc, char **argv, run_args *a)
{
    memset(a, 0, sizeof *a);
    a->kernels = getenv("LNNVM_KERNELS");
    a->batch = a->repeat = a->threads = 1;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--no-plan")) {
            a->no_plan = 1;
            continue;
        }
        if (!strcmp(o, "--in") || !strcmp(o, "--out") || !strcmp(o, "--batch") ||
            !strcmp(o, "--repeat") || !strcmp(o, "--kernels") || !strcmp(o, "--trace") ||
            !strcmp(o, "--threads")) {
            if (i + 1 >= argc)
                fail(EXIT_USAGE, "%s needs a value", o);
            const char *v = argv[++i];
            if (!strcmp(o, "--in")) {
                if (a->nin == LNN_MAX_IO)
                    fail(EXIT_USAGE, "too many --in (at most %u)", LNN_MAX_IO);
                a->in_path[a->nin++] = v;
            } else if (!strcmp(o, "--out")) {
                if (a->nout == LNN_MAX_IO)
                    fail(EXIT_USAGE, "too many --out (at most %u)", LNN_MAX_IO);
                if (!strcmp(v, "-"))
                    fail(EXIT_USAGE, "--out -: standard output carries the JSON line");
                a->out_path[a->nout++] = v;
            } else if (!strcmp(o, "--kernels")) {
                a->kernels = v;
            } else if (!strcmp(o, "--trace")) {
                a->trace_path = v;
            } else if (!strcmp(o, "--batch")) {
                a->batch = parse_count(o, v, UINT32_MAX);
            } else if (!strcmp(o, "--threads")) {
                a->threads = parse_count(o, v, 256);
            } else {
                a->repeat = parse_count(o, v, 1000000000ul);
            }
        } else if (o[0] == '-' && o[1] != '\0') {
            fail(EXIT_USAGE, "unknown option '%s'", o);
        } else if (!a->model_path) {
            a->model_path = o;
        } else {
            fail(EXIT_USAGE, "unexpected argument '%s'", o);
        }
    }
    if (!a->model_path)
        usage();
}

/* The buffers of a run: the inputs as read, the outputs for all n rows. */
typedef struct {
    uint32_t ni, no;
    blob in[LNN_MAX_IO];
    float *out[LNN_MAX_IO];
    size_t out_len[LNN_MAX_IO];
    size_t n; /* rows: those of the batched inputs, 1 if none is */
} run_io;

/* Reads the inputs and checks them against the model: batched ones give the
 * row count n, unbatched ones hold one tensor shared by every chunk. */
static void run_load_inputs(const run_args *a, const lnn_model *m, run_io *io)
{
    io->ni = lnn_num_inputs(m);
    io->no = lnn_num_outputs(m);
    if (a->nin != io->ni)
        fail(EXIT_USAGE, "%s: the model has %u input%s, got %u --in", a->model_path,
             io->ni, io->ni == 1 ? "" : "s", a->nin);
    if (a->nout != io->no)
        fail(EXIT_USAGE, "%s: the model has %u output%s, got %u --out", a->model_path,
             io->no, io->no == 1 ? "" : "s", a->nout);
    const char *n_from = NULL;
    io->n = 1;
    for (uint32_t i = 0; i < io->ni; i++) {
        blob *b = &io->in[i];
        load_file(a->in_path[i], b);
        const size_t row = lnn_input_row_elems(m, i), row_bytes = row * sizeof(float);
        if (!lnn_input_batched(m, i)) {
            if (b->len != row_bytes)
                fail(EXIT_USAGE,
                     "%s: input %u is not batched: expected %zu bytes (%zu float32), "
                     "got file size %zu", b->path, i, row_bytes, row, b->len);
            continue;
        }
        if (b->len == 0 || b->len % row_bytes != 0)
            fail(EXIT_USAGE,
                 "%s: input %u: expected a non-zero multiple of the row size %zu "
                 "bytes (%zu float32), got file size %zu", b->path, i, row_bytes, row, b->len);
        const size_t rows = b->len / row_bytes;
        if (n_from && rows != io->n)
            fail(EXIT_USAGE, "%s: input %u has %zu rows but %s has %zu", b->path, i, rows,
                 n_from, io->n);
        io->n = rows;
        n_from = b->path;
    }
}

/* Zeroed outputs for the n rows (a batched output) or one tensor. */
static void run_alloc_outputs(const run_args *a, const lnn_model *m, run_io *io)
{
    for (uint32_t i = 0; i < io->no; i++) {
        const size_t row = lnn_output_row_elems(m, i);
        const size_t rows = lnn_output_batched(m, i) ? io->n : 1;
        if (rows > SIZE_MAX / sizeof(float) / row)
            fail(EXIT_USAGE, "%s: output %u too large", a->out_path[i], i);
        io->out_len[i] = rows * row * sizeof(float);
        io->out[i] = alloc64(io->out_len[i], a->out_path[i]);
    }
}

/* How the n rows are shared: threads slices of per_thread rows (the last
 * ones may be short or empty), each run in chunks of chunk rows. */
typedef struct {
    unsigned long threads;
    size_t per_thread, chunks_per, chunks;
    uint32_t chunk;
} run_split;

static run_split run_plan_split(const run_args *a, const lnn_model *m, size_t n)
{
    run_split s;
    s.threads = a->threads > n ? n : a->threads; /* at least one row per thread */
    if (s.threads > 1 && a->trace_path)
        fail(EXIT_USAGE, "--trace runs on one thread (drop --threads)");
    /* a stateful model's chunks are time steps: in order, all of one size
     * (lnn_run_rows refuses anything else with E_BATCH; said here in words) */
    const int stateful = m->state_row > 0;
    if (stateful && s.threads > 1)
        fail(EXIT_USAGE, "%s: a stateful model runs its chunks (time steps) in order: drop --threads",
             a->model_path);
    s.per_thread = (n + s.threads - 1) / s.threads;
    s.chunk = (uint32_t)(a->batch < s.per_thread ? a->batch : s.per_thread);
    if (stateful && n % s.chunk != 0)
        fail(EXIT_USAGE,
             "%s: a stateful model takes the rows as time steps of --batch %u streams: "
             "%zu rows is not a multiple of %u", a->model_path, s.chunk, n, s.chunk);
    s.chunks_per = (s.per_thread + s.chunk - 1) / s.chunk;
    s.chunks = s.chunks_per * s.threads;
    if (s.chunks > SIZE_MAX / sizeof(double) / a->repeat)
        fail(EXIT_USAGE, "too many chunks x repeats");
    return s;
}

/* The threads' slices: thread 0 runs md's model, every other thread a model
 * of its own (initialised like md's, on the same model bytes, read only)
 * with its own arena; unbatched outputs of threads > 0 go to scratch. */
typedef struct {
    slice *work;
    model *extra;                  /* threads - 1 */
    float *scratch_out[LNN_MAX_IO]; /* unbatched outputs of threads > 0 */
} run_threads;

static void run_slices(const run_args *a, model *md, const run_io *io, const run_split *s,
                       run_threads *rt)
{
    memset(rt, 0, sizeof *rt);
    rt->work = calloc(s->threads, sizeof *rt->work);
    rt->extra = s->threads > 1 ? calloc(s->threads - 1, sizeof *rt->extra) : NULL;
    if (!rt->work || (s->threads > 1 && !rt->extra))
        fail(EXIT_USAGE, "out of memory for %lu threads", s->threads);
    for (unsigned long t = 0; t < s->threads; t++) {
        slice *w = &rt->work[t];
        if (t == 0) {
            w->m = &md->m;
        } else {
            model *x = &rt->extra[t - 1];
            x->file = md->file;
            model_init(x, s->chunk);
            if (x->st != LNN_OK)
                fail(EXIT_RUN, "%s: lnn_init for thread %lu: %s", a->model_path, t,
                     lnn_status_name(x->st));
            w->m = &x->m;
            if (a->kernels && *a->kernels)
                lnn_use_kernels(w->m, a->kernels);
            if (a->no_plan)
                lnn_use_plan(w->m, 0);
        }
        const size_t start = t * s->per_thread < io->n ? t * s->per_thread : io->n;
        const size_t end = (t + 1) * s->per_thread < io->n ? (t + 1) * s->per_thread : io->n;
        w->chunk = s->chunk;
        w->rows = end - start;
        w->lat = malloc((s->chunks_per ? s->chunks_per : 1) * sizeof(double));
        if (!w->lat)
            fail(EXIT_USAGE, "out of memory for timings");
        for (uint32_t i = 0; i < io->ni; i++) {
            const float *base = (const float *)(const void *)io->in[i].data;
            w->in[i] = base + (lnn_input_batched(&md->m, i) ? start * lnn_input_row_elems(&md->m, i) : 0);
        }
        for (uint32_t i = 0; i < io->no; i++) {
            if (!lnn_output_batched(&md->m, i)) {
                if (t > 0 && !rt->scratch_out[i])
                    rt->scratch_out[i] = alloc64(lnn_output_row_elems(&md->m, i) * sizeof(float),
                                                 "an output");
                w->out[i] = t > 0 ? rt->scratch_out[i] : io->out[i];
            } else {
                w->out[i] = io->out[i] + start * lnn_output_row_elems(&md->m, i);
            }
        }
    }
}

static void run_threads_free(run_threads *rt, unsigned long threads, uint32_t no)
{
    for (unsigned long t = 0; t < threads; t++)
        free(rt->work[t].lat);
    for (unsigned long t = 1; t < threads; t++)
        free(rt->extra[t - 1].arena);
    for (uint32_t i = 0; i < no; i++)
        free(rt->scratch_out[i]);
    free(rt->extra);
    free(rt->work);
}

/* The timings of repeat passes over the n rows: lat, per chunk and row
 * (every thread's chunks, nlat of them); wall, per pass and row. */
typedef struct {
    double *lat, *wall;
    size_t nlat;
} run_times;

static void run_timed(const run_args *a, const run_split *s, run_threads *rt, size_t n,
                      run_times *tm)
{
    pthread_t *tid = s->threads > 1 ? malloc(s->threads * sizeof *tid) : NULL;
    tm->lat = malloc(s->chunks * a->repeat * sizeof(double));
    tm->wall = malloc(a->repeat * sizeof(double));
    tm->nlat = 0;
    if ((s->threads > 1 && !tid) || !tm->lat || !tm->wall)
        fail(EXIT_USAGE, "out of memory for timings");
    for (unsigned long r = 0; r < a->repeat; r++) {
        /* every repeat is the same pass from zero state (stateless: a no-op) */
        for (unsigned long t = 0; t < s->threads; t++)
            lnn_reset(rt->work[t].m);
        const double t0 = now_us();
        if (s->threads == 1) {
            run_slice(&rt->work[0]);
        } else {
            for (unsigned long t = 0; t < s->threads; t++)
                if (pthread_create(&tid[t], NULL, run_slice, &rt->work[t]) != 0)
                    fail(EXIT_RUN, "cannot start thread %lu", t);
            for (unsigned long t = 0; t < s->threads; t++)
                pthread_join(tid[t], NULL);
        }
        tm->wall[r] = (now_us() - t0) / (double)n;
        for (unsigned long t = 0; t < s->threads; t++) {
            const slice *w = &rt->work[t];
            if (w->st != LNN_OK)
                fail(EXIT_RUN, "%s: run failed: %s: %s", a->model_path, lnn_status_name(w->st),
                     lnn_status_str(w->st));
            memcpy(tm->lat + tm->nlat, w->lat, w->nlat * sizeof(double));
            tm->nlat += w->nlat;
        }
    }
    free(tid);
}

/* The trace file (--trace), its stdio buffer allocated here, at setup. */
static void trace_open(const run_args *a, lnn_model *m, trace_file *trace, char **buf)
{
    *buf = NULL;
    if (!a->trace_path)
        return;
    if (!(trace->f = fopen(a->trace_path, "wb")))
        fail(EXIT_USAGE, "%s: cannot open for writing: %s", a->trace_path, strerror(errno));
    *buf = alloc64(1 << 16, "the trace buffer");
    setvbuf(trace->f, *buf, _IOFBF, 1 << 16);
    lnn_set_trace(m, trace_write, trace);
}

/* Closes the trace file and writes every output file. */
static void run_write(const run_args *a, const run_io *io, trace_file *trace, char *trace_buf)
{
    if (trace->f) {
        if (fclose(trace->f) != 0 || trace->failed)
            fail(EXIT_USAGE, "%s: write error: %s", a->trace_path, strerror(errno));
        free(trace_buf);
    }
    for (uint32_t i = 0; i < io->no; i++) {
        FILE *f = fopen(a->out_path[i], "wb");
        if (!f)
            fail(EXIT_USAGE, "%s: cannot open for writing: %s", a->out_path[i], strerror(errno));
        if (fwrite(io->out[i], 1, io->out_len[i], f) != io->out_len[i] || fclose(f) != 0)
            fail(EXIT_USAGE, "%s: write error: %s", a->out_path[i], strerror(errno));
    }
}

/* The median of n sorted values. */
static double median(const double *v, size_t n)
{
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The JSON line on standard output. latency: per chunk, divided by its rows
 * (every thread's chunks); wall: the whole run of the N rows (all threads),
 * divided by N. */
static void run_report(const run_args *a, const run_split *s, lnn_model *m, size_t n,
                       run_times *tm)
{
    qsort(tm->lat, tm->nlat, sizeof *tm->lat, cmp_double);
    qsort(tm->wall, a->repeat, sizeof *tm->wall, cmp_double);
    printf("{\"n\":%zu,\"batch\":%lu,\"chunks\":%zu,\"repeat\":%lu,\"threads\":%lu,"
           "\"latency_us_median\":%.3f,\"latency_us_min\":%.3f,"
           "\"latency_us_max\":%.3f,\"wall_us_per_row_median\":%.3f,"
           "\"wall_us_per_row_min\":%.3f,\"plan\":%s,\"isa\":\"%s\",\"vm_version\":\"%s\"}\n",
           n, a->batch, s->chunks, a->repeat, s->threads, median(tm->lat, tm->nlat), tm->lat[0],
           tm->lat[tm->nlat - 1], median(tm->wall, a->repeat), tm->wall[0],
           lnn_use_plan(m, !a->no_plan) ? "true" : "false", lnn_isa(m), lnn_version());
}

/* run: parse, load and check, split the rows over the threads, time the
 * repeats, write the outputs and the JSON line. */
static int cmd_run(int argc, char **argv)
{
    run_args a;
    run_parse(argc, argv, &a);
    model md;
    open_or_die(&md, a.model_path);
    run_io io;
    memset(&io, 0, sizeof io);
    run_load_inputs(&a, &md.m, &io);
    const run_split s = run_plan_split(&a, &md.m, io.n);
    /* the arena for the largest chunk */
    prepare_or_die(&md, s.chunk, a.model_path, a.kernels, a.no_plan);
    trace_file trace = {NULL, 0};
    char *trace_buf;
    trace_open(&a, &md.m, &trace, &trace_buf);
    run_alloc_outputs(&a, &md.m, &io);
    run_threads rt;
    run_slices(&a, &md, &io, &s, &rt);
    run_times tm;
    run_timed(&a, &s, &rt, io.n, &tm);
    run_threads_free(&rt, s.threads, io.no);
    run_write(&a, &io, &trace, trace_buf);
    run_report(&a, &s, &md.m, io.n, &tm);
    free(tm.lat);
    free(tm.wall);
    for (uint32_t i = 0; i < io.no; i++)
        free(io.out[i]);
    for (uint32_t i = 0; i < io.ni; i++)
        free(io.in[i].data);
    model_close(&md);
    return 0;
}

/* ---- test ---------------------------------------------------------------------- */

/* |got - expected|; +inf for a NaN output: the expected values are finite
 * (lnn_init refuses a test set that is not, E_NONFINITE), so a NaN or an
 * infinite output never passes. */
static double abs_err(float got, float expected)
{
    if (got != got)
        return INFINITY;
    return fabs((double)got - (double)expected);
}

/* The test set's cases laid out as the rows of each input (or output):
 * buf[i] gets count rows of row[i] floats, case c's row i taken from
 * cases + c * stride at the sum of the rows before i. */
static void split_cases(const float *cases, uint32_t count, uint32_t stride, uint32_t n,
                        const size_t *row, float **buf)
{
    for (uint32_t c = 0; c < count; c++) {
        const float *src = cases + (size_t)c * stride;
        for (uint32_t i = 0; i < n; i++) {
            memcpy(buf[i] + (size_t)c * row[i], src, row[i] * sizeof(float));
            src += row[i];
        }
    }
}

/* The io buffers of a test run: each input and output as count rows of its
 * own, in case order. */
typedef struct {
    uint32_t ni, no;
    float *in[LNN_MAX_IO], *out[LNN_MAX_IO];
    size_t in_row[LNN_MAX_IO], out_row[LNN_MAX_IO];
} test_io;

static void test_io_alloc(test_io *io, const lnn_model *m, const lnn_tests *ts)
{
    io->ni = lnn_num_inputs(m);
    io->no = lnn_num_outputs(m);
    for (uint32_t i = 0; i < io->ni; i++) {
        io->in_row[i] = lnn_input_row_elems(m, i);
        io->in[i] = alloc64(ts->count * io->in_row[i] * sizeof(float), "the test inputs");
    }
    for (uint32_t i = 0; i < io->no; i++) {
        io->out_row[i] = lnn_output_row_elems(m, i);
        io->out[i] = alloc64(ts->count * io->out_row[i] * sizeof(float), "the test outputs");
    }
    split_cases(ts->inputs, ts->count, ts->in_floats, io->ni, io->in_row, io->in);
}

static void test_io_free(test_io *io)
{
    for (uint32_t i = 0; i < io->ni; i++)
        free(io->in[i]);
    for (uint32_t i = 0; i < io->no; i++)
        free(io->out[i]);
}

/* Runs the count cases, chunk of them per lnn_run, each from zero state
 * (the cases of a stateful model are first steps of independent streams). */
static void run_cases(lnn_model *m, const char *path, const test_io *io, uint32_t count,
                      uint32_t chunk)
{
    for (uint32_t c = 0; c < count; c += chunk) {
        lnn_reset(m);
        const float *ip[LNN_MAX_IO];
        float *op[LNN_MAX_IO];
        for (uint32_t i = 0; i < io->ni; i++)
            ip[i] = io->in[i] + (size_t)c * io->in_row[i];
        for (uint32_t i = 0; i < io->no; i++)
            op[i] = io->out[i] + (size_t)c * io->out_row[i];
        const lnn_status st = lnn_run(m, ip, op, chunk);
        if (st != LNN_OK)
            fail(EXIT_RUN, "%s: run failed: %s: %s", path, lnn_status_name(st),
                 lnn_status_str(st));
    }
}

/* Compares every case's outputs with the expected ones: a line per case
 * whose largest error exceeds the tolerance, then the summary line.
 * Returns the number of failed cases. */
static uint32_t report_cases(const lnn_tests *ts, const test_io *io)
{
    double max_err = 0.0;
    uint32_t failed = 0;
    for (uint32_t c = 0; c < ts->count; c++) {
        const float *want = ts->expected + (size_t)c * ts->out_floats;
        double worst = 0.0;
        uint32_t at_o = 0, at_e = 0;
        float got_at = 0.0f, want_at = 0.0f;
        for (uint32_t o = 0; o < io->no; o++) {
            const float *got = io->out[o] + (size_t)c * io->out_row[o];
            for (uint32_t e = 0; e < io->out_row[o]; e++, want++) {
                const double err = abs_err(got[e], *want);
                if (err > worst) {
                    worst = err;
                    at_o = o;
                    at_e = e;
                    got_at = got[e];
                    want_at = *want;
                }
            }
        }
        if (worst > max_err)
            max_err = worst;
        if (worst > ts->max_abs_err) {
            failed++;
            printf("case %u: abs_err %g at output %u element %u: got %.9g, expected %.9g\n", c,
                   worst, at_o, at_e, (double)got_at, (double)want_at);
        }
    }
    printf("tests: %u cases, max_abs_err %g, tolerance %g, %s\n", ts->count, max_err,
           (double)ts->max_abs_err, failed ? "FAILED" : "PASSED");
    return failed;
}

/* Runs the bundled test set: all cases as one batch when every input and
 * output is batched, else one case per run (an unbatched tensor is a whole
 * case). */
/* The arguments of the commands that run the bundled test set (test,
 * profile): MODEL [--no-plan] [--kernels SET], and --runs N where `runs` is
 * given (profile). */
typedef struct {
    const char *path, *kernels;
    int no_plan;
} tests_args;

static tests_args parse_tests_args(const char *cmd, int argc, char **argv, unsigned long *runs)
{
    tests_args a = {NULL, getenv("LNNVM_KERNELS"), 0};
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--no-plan"))
            a.no_plan = 1;
        else if (!strcmp(argv[i], "--kernels") && i + 1 < argc)
            a.kernels = argv[++i];
        else if (runs && !strcmp(argv[i], "--runs") && i + 1 < argc)
            *runs = parse_count("--runs", argv[++i], 100000000ul);
        else if (argv[i][0] == '-' && argv[i][1] != '\0')
            fail(EXIT_USAGE, "%s: unknown option or missing value '%s'", cmd, argv[i]);
        else if (!a.path)
            a.path = argv[i];
        else
            fail(EXIT_USAGE, "unexpected argument '%s'", argv[i]);
    }
    if (!a.path)
        usage();
    return a;
}

/* The model at `path` opened, and its bundled test set into ts (`why`:
 * what the set is needed for, for the message when there is none). */
static void open_with_tests(model *md, const char *path, lnn_tests *ts, const char *why)
{
    open_or_die(md, path);
    if (!lnn_get_tests(&md->m, ts))
        fail(EXIT_USAGE, "%s: the model has no bundled test set (section TESTS)%s", path, why);
}

static int cmd_test(int argc, char **argv)
{
    const tests_args a = parse_tests_args("test", argc, argv, NULL);
    const char *path = a.path;
    model md;
    lnn_tests ts;
    open_with_tests(&md, path, &ts, "");
    int all_batched = 1;
    for (uint32_t i = 0; i < lnn_num_inputs(&md.m); i++)
        all_batched &= lnn_input_batched(&md.m, i);
    for (uint32_t i = 0; i < lnn_num_outputs(&md.m); i++)
        all_batched &= lnn_output_batched(&md.m, i);
    const uint32_t chunk = all_batched ? ts.count : 1;
    /* the same bytes: ts still points into them */
    prepare_or_die(&md, chunk, path, a.kernels, a.no_plan);

    test_io io;
    test_io_alloc(&io, &md.m, &ts);
    run_cases(&md.m, path, &io, ts.count, chunk);
    const uint32_t failed = report_cases(&ts, &io);
    test_io_free(&io);
    model_close(&md);
    return failed ? EXIT_TEST_FAILED : 0;
}

#ifdef LNN_PROFILE
/* ---- profile (the profiling build only: make PROFILE=1) ------------------------ */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The VM's profiling clock (lnnvm.h): CLOCK_MONOTONIC in ns, as 32 bits
 * (the hook takes differences, which wrap correctly). */
uint32_t lnn_profile_clock(void)
{
    return (uint32_t)now_ns();
}

static int cmp_u64(const void *a, const void *b)
{
    const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* One row (the bundled test set's first case, batch 1) run --runs times
 * with the per-pc counters on, and as many times without, in alternating
 * blocks of 4, each block timed from outside. The figures are those of the
 * fastest block of each kind (the one the machine's other work disturbed
 * least; its counters for the profiled kind), scaled to --runs. The JSON
 * line gives the counters, both whole-run figures and the hook's own cost
 * per interval (median of 9 calibrations), for the host to compare. */
static int cmd_profile(int argc, char **argv)
{
    unsigned long runs = 200;
    const tests_args a = parse_tests_args("profile", argc, argv, &runs);
    const char *path = a.path;
    model md;
    lnn_tests ts;
    open_with_tests(&md, path, &ts, " to profile on");
    prepare_or_die(&md, 1, path, a.kernels, a.no_plan);
    test_io io;
    test_io_alloc(&io, &md.m, &ts);
    const float *ip[LNN_MAX_IO];
    for (uint32_t i = 0; i < io.ni; i++)
        ip[i] = io.in[i];
    /* blocks of PER_BLOCK runs: short enough that some escape the
     * preemptions of a busy machine (a run under QEMU takes about 1 ms) */
    enum { PER_BLOCK = 4, WARMUP = 20, CALIBRATIONS = 9, MARKS = 20000 };
    const unsigned long nblocks = runs / PER_BLOCK;
    if (nblocks == 0)
        fail(EXIT_USAGE, "--runs: at least %d (one block)", PER_BLOCK);
    const uint32_t words = lnn_code_words(&md.m);
    /* counters per block, and each block's whole-run time per run */
    lnn_profile_counter *blocks = calloc(nblocks * (words ? words : 1), sizeof *blocks);
    double *whole[2] = {malloc(nblocks * sizeof(double)), malloc(nblocks * sizeof(double))};
    if (!blocks || !whole[0] || !whole[1])
        fail(EXIT_USAGE, "out of memory for the counters");
    lnn_profile prof;
    prof.count = words;
    for (unsigned long b = 0; b <= nblocks; b++) { /* block 0: warm-up, not counted */
        const unsigned long n = b == 0 ? WARMUP : PER_BLOCK;
        prof.counter = blocks + (b ? b - 1 : 0) * words;
        for (int on = 0; on < 2; on++) {
            lnn_set_profile(&md.m, on && b > 0 ? &prof : NULL);
            const uint64_t t0 = now_ns();
            for (unsigned long r = 0; r < n; r++) {
                lnn_reset(&md.m);
                const lnn_status st = lnn_run(&md.m, ip, io.out, 1);
                if (st != LNN_OK)
                    fail(EXIT_RUN, "%s: run failed: %s: %s", path, lnn_status_name(st),
                         lnn_status_str(st));
            }
            if (b > 0)
                whole[on][b - 1] = (double)(now_ns() - t0) / (double)n;
        }
    }
    lnn_set_profile(&md.m, NULL);
    uint64_t cal[CALIBRATIONS];
    for (int i = 0; i < CALIBRATIONS; i++)
        cal[i] = lnn_profile_overhead(MARKS);
    qsort(cal, CALIBRATIONS, sizeof *cal, cmp_u64);
    unsigned long fast[2] = {0, 0}; /* the fastest block of each kind */
    for (int on = 0; on < 2; on++)
        for (unsigned long b = 1; b < nblocks; b++)
            if (whole[on][b] < whole[on][fast[on]])
                fast[on] = b;
    const lnn_profile_counter *best = blocks + fast[1] * words;
    runs = nblocks * PER_BLOCK; /* the figures are per PER_BLOCK runs, scaled to these */
    const double scale = (double)runs / PER_BLOCK;
    printf("{\"clock\":\"clock_gettime(CLOCK_MONOTONIC)\",\"unit\":\"ns\",\"runs\":%lu,"
           "\"whole_plain_ticks\":%llu,\"whole_profiled_ticks\":%llu,"
           "\"overhead_ticks_per_mark\":%.3f,\"plan\":%s,\"isa\":\"%s\",\"vm_version\":\"%s\","
           "\"code_words\":%u,\"counters\":[",
           runs, (unsigned long long)(whole[0][fast[0]] * (double)runs),
           (unsigned long long)(whole[1][fast[1]] * (double)runs),
           (double)cal[CALIBRATIONS / 2] / MARKS, lnn_use_plan(&md.m, !a.no_plan) ? "true" : "false",
           lnn_isa(&md.m), lnn_version(), words);
    for (uint32_t pc = 0; pc < words; pc++)
        printf("%s[%.0f,%.0f]", pc ? "," : "", (double)best[pc].ticks * scale,
               (double)best[pc].calls * scale);
    printf("]}\n");
    free(blocks);
    free(whole[0]);
    free(whole[1]);
    test_io_free(&io);
    model_close(&md);
    return 0;
}
#endif

/* ---- stream -------------------------------------------------------------------- */

#define WHITESPACE " \t\r\n\f\v"

enum { LINE_ROW, LINE_RESET };

/* One line of stream input: the word reset (LINE_RESET), or exactly n floats
 * (LINE_ROW, into x). A malformed line ends the process, naming it; x may
 * then be partly written, but nothing has run. */
static int parse_line(const char *line, size_t len, float *x, size_t n, size_t lno)
{
    if (strlen(line) != len)
        fail(EXIT_USAGE, "standard input line %zu: contains a NUL byte", lno);
    const char *s = line + strspn(line, WHITESPACE);
    const size_t word = strcspn(s, WHITESPACE);
    if (word == 5 && !strncmp(s, "reset", 5) && s[word + strspn(s + word, WHITESPACE)] == '\0')
        return LINE_RESET;
    size_t got = 0;
    while (*(s += strspn(s, WHITESPACE))) {
        char *end;
        const float v = strtof(s, &end); /* nan, inf; out of range: +-inf or 0 */
        const size_t tok = strcspn(s, WHITESPACE);
        if (end != s + tok)
            fail(EXIT_USAGE, "standard input line %zu: '%.*s' is not a number", lno,
                 (int)(tok < 40 ? tok : 40), s);
        if (got < n)
            x[got] = v;
        got++;
        s = end;
    }
    if (got != n)
        fail(EXIT_USAGE,
             "standard input line %zu: expected %zu values (one row of every input, in order) "
             "or 'reset', got %zu", lno, n, got);
    return LINE_ROW;
}

/* Rows from standard input, one lnn_run of batch 1 per line, the outputs'
 * floats printed on one line and flushed at once (a pipe sees each answer
 * before it sends the next row). The state of a stateful model carries from
 * line to line; the line reset starts it from zero again. */
static int cmd_stream(int argc, char **argv)
{
    const char *path = NULL, *kernels = getenv("LNNVM_KERNELS");
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--kernels") && i + 1 < argc)
            kernels = argv[++i];
        else if (argv[i][0] == '-' && argv[i][1] != '\0')
            fail(EXIT_USAGE, "stream: unknown option or missing value '%s'", argv[i]);
        else if (!path)
            path = argv[i];
        else
            fail(EXIT_USAGE, "unexpected argument '%s'", argv[i]);
    }
    if (!path)
        usage();
    if (!strcmp(path, "-"))
        fail(EXIT_USAGE, "stream reads its rows from standard input: the model cannot be '-'");
    model md;
    open_or_die(&md, path);
    use_kernels_or_die(&md.m, kernels);
    const uint32_t ni = lnn_num_inputs(&md.m), no = lnn_num_outputs(&md.m);
    size_t n_in = 0, n_out = 0;
    for (uint32_t i = 0; i < ni; i++)
        n_in += lnn_input_row_elems(&md.m, i);
    for (uint32_t i = 0; i < no; i++)
        n_out += lnn_output_row_elems(&md.m, i);
    float *x = alloc64(n_in * sizeof(float), "an input row");
    float *y = alloc64(n_out * sizeof(float), "an output row");
    const float *ip[LNN_MAX_IO];
    float *op[LNN_MAX_IO];
    for (uint32_t i = 0, at = 0; i < ni; at += lnn_input_row_elems(&md.m, i), i++)
        ip[i] = x + at;
    for (uint32_t i = 0, at = 0; i < no; at += lnn_output_row_elems(&md.m, i), i++)
        op[i] = y + at;

    char *line = NULL;
    size_t cap = 0, lno = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, stdin)) != -1) {
        lno++;
        if (parse_line(line, (size_t)len, x, n_in, lno) == LINE_RESET) {
            lnn_reset(&md.m);
            puts("reset");
        } else {
            const lnn_status st = lnn_run(&md.m, ip, op, 1);
            if (st != LNN_OK)
                fail(EXIT_RUN, "%s: line %zu: run failed: %s: %s", path, lno, lnn_status_name(st),
                     lnn_status_str(st));
            for (size_t k = 0; k < n_out; k++)
                printf("%s%.9g", k ? " " : "", (double)y[k]);
            putchar('\n');
        }
        fflush(stdout);
    }
    if (ferror(stdin))
        fail(EXIT_USAGE, "standard input: read error: %s", strerror(errno));
    free(line);
    free(x);
    free(y);
    model_close(&md);
    return 0;
}

/* Takes --max-work N and --max-arena BYTES out of argv (anywhere after the
 * program name) into limits; returns the new argc. */
static int take_limits(int argc, char **argv)
{
    int out = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--max-work") != 0 && strcmp(a, "--max-arena") != 0) {
            argv[out++] = argv[i];
            continue;
        }
        if (i + 1 >= argc)
            fail(EXIT_USAGE, "%s needs a value", a);
        const char *v = argv[++i];
        char *end;
        errno = 0;
        const unsigned long long n = strtoull(v, &end, 10);
        if (errno || end == v || *end || n == 0 || v[0] == '-')
            fail(EXIT_USAGE, "%s: expected a positive integer, got '%s'", a, v);
        if (!strcmp(a, "--max-work"))
            limits.max_work = n;
        else
            limits.max_arena = n;
    }
    argv[out] = NULL;
    return out;
}

int main(int argc, char **argv)
{
    argc = take_limits(argc, argv);
    static uint32_t scratch[(LNN_SCRATCH_SIZE + 3) / 4]; /* 4-aligned */
    limits.scratch = scratch;
    limits.scratch_len = sizeof scratch;
    if (argc >= 2 && !strcmp(argv[1], "--version")) {
        printf("lnnvm %s (format %u.%u)\n", lnn_version(), LNN_VERSION_MAJOR,
               LNN_VERSION_MINOR);
        return 0;
    }
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))
        usage_to(stdout, 0);
    if (argc < 3)
        usage();
    const char *cmd = argv[1];
    if (!strcmp(cmd, "run"))
        return cmd_run(argc - 2, argv + 2);
    if (!strcmp(cmd, "test"))
        return cmd_test(argc - 2, argv + 2);
    if (!strcmp(cmd, "stream"))
        return cmd_stream(argc - 2, argv + 2);
#ifdef LNN_PROFILE
    if (!strcmp(cmd, "profile"))
        return cmd_profile(argc - 2, argv + 2);
#endif
    if (argc != 3)
        usage();
    if (!strcmp(cmd, "info"))
        return cmd_info(argv[2]);
    if (!strcmp(cmd, "verify"))
        return cmd_verify(argv[2]);
    if (!strcmp(cmd, "disasm"))
        return cmd_disasm(argv[2]);
    usage();
    return EXIT_USAGE;
}
