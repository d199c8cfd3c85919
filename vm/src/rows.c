/*
 * rows.c - lnn_run_rows: many rows run as a sequence of lnn_run calls of at
 * most batch rows each (the chunks), the layout the hosted runner (lnnvm run
 * --batch), the firmware (RUN frames) and the Python bindings share. See
 * lnnvm.h for the rules; the Python mirror of the stateful rule for the
 * serial device is python/lnnedge/devices/serial/rows.py.
 */
#include "internal.h"
#include "lnnvm.h"

lnn_status lnn_run_rows(lnn_model *m, const float *const *inputs, float *const *outputs,
                        size_t rows, uint32_t batch, lnn_chunk_fn on_chunk, void *ctx)
{
    if (!m || !inputs || !outputs || rows == 0)
        return LNN_E_ARG;
    if (m->ready != LNN_READY_MAGIC)
        return LNN_E_NOT_READY;
    const uint32_t chunk = rows < batch ? (uint32_t)rows : batch;
    /* a stateful model's chunks are time steps of chunk streams: a shorter
     * last chunk would change the batch and so start from zero state */
    if (chunk == 0 || chunk > m->max_batch || (m->state_row > 0 && rows % chunk != 0))
        return LNN_E_BATCH;
    const uint32_t ni = m->num_inputs, no = m->num_outputs;
    size_t in_step[LNN_MAX_IO], out_step[LNN_MAX_IO]; /* floats from one row to the next, 0: unbatched */
    for (uint32_t i = 0; i < ni; i++)
        in_step[i] = lnn_input_batched(m, i) ? lnn_input_row_elems(m, i) : 0u;
    for (uint32_t i = 0; i < no; i++)
        out_step[i] = lnn_output_batched(m, i) ? lnn_output_row_elems(m, i) : 0u;
    size_t c = 0;
    for (size_t start = 0; start < rows; start += chunk, c++) {
        const uint32_t r = rows - start < chunk ? (uint32_t)(rows - start) : chunk;
        const float *ip[LNN_MAX_IO];
        float *op[LNN_MAX_IO];
        for (uint32_t i = 0; i < ni; i++)
            ip[i] = inputs[i] ? inputs[i] + start * in_step[i] : NULL;
        for (uint32_t i = 0; i < no; i++)
            op[i] = outputs[i] ? outputs[i] + start * out_step[i] : NULL;
        const lnn_status s = lnn_run(m, ip, op, r);
        if (s != LNN_OK)
            return s;
        if (on_chunk)
            on_chunk(ctx, c, r);
    }
    return LNN_OK;
}
