/*
 * fuzz_common.h - shared by the libFuzzer harnesses (fuzz_load.c,
 * fuzz_run.c) and the structure-aware mutator (mutator.c).
 *
 * The harnesses link the one VM library built from vm/src by vm/Makefile
 * (the same loader and verifier as every Linux build and the firmware);
 * only the instrumentation flags differ.
 */
#ifndef LNN_FUZZ_COMMON_H
#define LNN_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* 1 in fuzz_run: an input is a model (header file_size bytes) followed by a
 * tail that picks the batch size and the input values; the mutator keeps
 * the tail apart. 0 in fuzz_load: the whole input is the model. */
extern int lnn_fuzz_with_tail;

/* Bytes of data that form the model: the header's file_size when it is
 * plausible (64 <= file_size <= size) and a tail is expected, else size. */
size_t lnn_fuzz_model_len(const uint8_t *data, size_t size);

/* libFuzzer's own byte mutator (available with -fsanitize=fuzzer). */
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

#endif
