/*
 * fuzz_load.c - libFuzzer target: lnn_init (header, CRC, sections, tensors,
 * the verifier, arena binding) on arbitrary bytes, plus every accessor and
 * the disassembler the runner uses on files that failed verification.
 *
 * The file is copied into a heap block of exactly its size, so ASan sees a
 * read one byte past the end. Checks beyond "no sanitizer report":
 *   - lnn_init is deterministic (same status and error offset twice);
 *   - a failure names a status of the table and an offset inside the file;
 *   - a success has a max batch >= 1 and io row sizes >= 1, and its test
 *     set (if any) lies inside the file and matches the io row sizes;
 *   - the arena size lnn_arena_size reports for batch 1 is accepted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "internal.h"
#include "lnn_disasm.h"

#define ARENA_CAP (1u << 22) /* larger arenas are not allocated: E_ARENA path */

static void fail(const char *what, lnn_status s, uint32_t off)
{
    fprintf(stderr, "fuzz_load: %s (status %s, offset %u)\n", what, lnn_status_name(s),
            (unsigned)off);
    abort();
}

/* The test set of an accepted model: every float of it inside the file (read
 * them all: ASan checks), one case's floats those of all the io rows. */
static void check_tests(const lnn_model *m, const uint8_t *buf, size_t size)
{
    lnn_tests t;
    if (!lnn_get_tests(m, &t))
        return;
    uint64_t in = 0, out = 0;
    for (uint32_t i = 0; i < lnn_num_inputs(m); i++)
        in += lnn_input_row_elems(m, i);
    for (uint32_t i = 0; i < lnn_num_outputs(m); i++)
        out += lnn_output_row_elems(m, i);
    if (t.count < 1 || t.in_floats != in || t.out_floats != out || !(t.max_abs_err >= 0.0f))
        fail("test set does not match the model", LNN_OK, 0);
    const uint8_t *end = (const uint8_t *)(t.expected + (size_t)t.count * t.out_floats);
    if ((const uint8_t *)t.inputs < buf || end > buf + size)
        fail("test set outside the file", LNN_OK, 0);
    volatile float sink = 0.0f; /* keeps the reads */
    for (const float *f = t.inputs; (const uint8_t *)f < end; f++)
        sink = *f;
    (void)sink;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    lnn_fuzz_with_tail = 0;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = (uint8_t *)malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);

    const size_t need = lnn_arena_size(buf, size, 1);
    const size_t arena_len = need <= ARENA_CAP ? need : 64;
    uint8_t *arena = arena_len ? (uint8_t *)malloc(arena_len) : NULL;

    lnn_model m, m2;
    const lnn_status s = lnn_init(&m, buf, size, arena, arena_len);
    const lnn_status s2 = lnn_init(&m2, buf, size, arena, arena_len);
    if (s != s2 || lnn_error_offset(&m) != lnn_error_offset(&m2))
        fail("lnn_init is not deterministic", s, lnn_error_offset(&m));
    if (lnn_status_name(s)[0] == '\0' || strcmp(lnn_status_name(s), "E_UNKNOWN") == 0)
        fail("unknown status", s, 0);

    char line[512];
    if (s == LNN_OK) {
        if (lnn_max_batch(&m) < 1)
            fail("accepted model with max batch 0", s, 0);
        for (uint32_t i = 0; i < lnn_num_inputs(&m); i++)
            if (lnn_input_row_elems(&m, i) < 1)
                fail("input with no elements", s, i);
        for (uint32_t i = 0; i < lnn_num_outputs(&m); i++)
            if (lnn_output_row_elems(&m, i) < 1)
                fail("output with no elements", s, i);
        if (lnn_input_row_elems(&m, lnn_num_inputs(&m)) != 0)
            fail("row elems past the inputs", s, 0);
        (void)lnn_isa(&m);
        for (uint32_t i = 0; i < lnn_num_inputs(&m); i++)
            lnn_describe_shape(&m, m.input_tensor[i], line, sizeof line);
        check_tests(&m, buf, size);
    } else {
        const uint32_t off = lnn_error_offset(&m);
        if (size >= LNN_HEADER_SIZE && off >= size && s != LNN_E_ARENA)
            fail("error offset outside the file", s, off);
        if (lnn_max_batch(&m) != 0 || lnn_num_inputs(&m) != 0)
            fail("failed model answers accessors", s, off);
        float x = 0, *xs[1] = {&x};
        if (lnn_run(&m, (const float *const *)xs, xs, 1) != LNN_E_NOT_READY)
            fail("lnn_run on a failed model", s, off);
    }
    /* what `lnnvm disasm` does, also for code that failed verification */
    if (m.stage >= LNN_STAGE_TENSORS) {
        uint32_t depth = 0;
        for (uint32_t t = 0; t < m.num_tensors; t++)
            lnn_describe_tensor(&m, t, line, sizeof line);
        for (uint32_t pc = 0; pc < m.code_words; pc++)
            lnn_disasm_insn(&m, pc, &depth, line, sizeof line);
        lnn_disasm_insn(&m, 0, &depth, line, 8); /* cut output */
    }
    free(arena);
    free(buf);
    return 0;
}
