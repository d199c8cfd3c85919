/*
 * device.c - the device side of the lnnedge serial protocol (vm/PROTOCOL.md).
 *
 * Receive path: bytes accumulate until a 0x00; the block is COBS-decoded,
 * its size, CRC-32 and length field checked (a failure is answered with a
 * NAK and forgotten), then the request is handled and answered. The last
 * answer is kept as sent: a request identical to the previous one (same seq
 * and same CRC: the host did not get our answer and sent it again) is
 * answered from that copy without running anything twice.
 *
 * Memory: the model buffer and the arena are static (.noinit); there are
 * two frame buffers of one frame of LNN_MAX_PAYLOAD bytes each, one in and
 * one out. A received block is COBS-decoded in place (the decoded bytes are
 * never ahead of the encoded ones), and an answer is COBS-encoded as it is
 * written to the line, from the unencoded frame, which is also the copy
 * kept for a repeat: no encoded copies (on a 16 KB part they were two of
 * the four kilobyte buffers). Nothing is allocated; a block longer than the
 * receive buffer is dropped up to the next 0x00.
 *
 * Loading is atomic: a new model is written into the model buffer beside
 * the loaded one (at the other end of it) and verified there by lnn_init
 * into a second lnn_model; only then does it replace the loaded model. A
 * load cut at any frame, a transfer with a bad CRC-32 or a file lnn_init
 * refuses leaves the loaded model running. The price is that both files
 * must fit in the buffer at once (else E_NO_ROOM: the host unloads first);
 * two separate buffers would halve the largest model instead, for every
 * model.
 *
 * A model resident in flash (LNN_RESIDENT_MODEL: the Makefile's MODEL_FILE
 * linked in as lnn_resident_model) is verified by lnn_init at boot and run
 * where it lies: the VM reads its constants in place, only the arena is in
 * RAM. INFO says `model_source: flash` and gives the SHA-256 the build
 * recorded beside it. An upload (where LNN_MODEL_MAX > 0) replaces it until
 * the next boot; with LNN_MODEL_MAX 0 there is no upload buffer at all and
 * LOAD_BEGIN answers E_TOO_BIG.
 */
#include "device.h"

#include <string.h>

#include "board.h"
#include "cobs.h"
#include "crc32.h"
#include "internal.h"
#include "lnnvm.h"
#include "proto.h"

#ifndef LNN_MODEL_MAX
#define LNN_MODEL_MAX (2048u * 1024u)
#endif
#ifndef LNN_ARENA_SIZE
#define LNN_ARENA_SIZE (1536u * 1024u)
#endif
#ifndef LNN_FW_IMAGE
#define LNN_FW_IMAGE "lnnedge-m4"
#endif
#ifndef LNN_FW_VERSION
#define LNN_FW_VERSION "0.1.0"
#endif
#ifndef LNN_TARGET_NAME
#define LNN_TARGET_NAME "cortex-m4"
#endif

_Static_assert(LNN_MAX_PAYLOAD >= LNN_P_MIN_PAYLOAD, "LNN_MAX_PAYLOAD below the protocol minimum");
_Static_assert(LNN_MAX_PAYLOAD <= 65535u, "the length field is 16 bits");

/* ---- buffers -------------------------------------------------------------- */

#define LNN_CAN_LOAD (LNN_MODEL_MAX > 0)
#if LNN_CAN_LOAD
static uint8_t model_buf[LNN_MODEL_MAX] __attribute__((aligned(64))) LNN_NOINIT;
#endif
#if LNN_RESIDENT_MODEL
extern const uint8_t lnn_resident_model[], lnn_resident_model_end[];
extern const char lnn_resident_sha256[];
#endif
static uint8_t arena[LNN_ARENA_SIZE] __attribute__((aligned(64))) LNN_NOINIT;

/* the block being received (encoded, no delimiters), decoded in place */
static uint8_t rx_raw[LNN_COBS_MAX(LNN_FRAME_MAX)] __attribute__((aligned(8)));
static size_t rx_n;
static int rx_overlong;
static uint8_t tx_raw[LNN_FRAME_MAX] __attribute__((aligned(8))); /* the last answer, unencoded */
static size_t tx_raw_len;
static uint8_t small_raw[LNN_P_HEADER_SIZE + 16u + LNN_P_CRC_SIZE] __attribute__((aligned(4)));

#define TX_PAYLOAD (tx_raw + LNN_P_HEADER_SIZE)

/* ---- state ------------------------------------------------------------------ */

static struct {
    uint32_t session;  /* 0 until the first HELLO */
    uint32_t pool;     /* entropy gathered until then */
    int have_last;     /* tx_raw answers (last_seq, last_crc) */
    int have_seq;      /* a request was executed: last_seq orders the next ones */
    uint16_t last_seq;
    uint32_t last_crc;
    int have_hello;    /* hello_crc: the CRC of the last HELLO executed */
    uint32_t hello_crc;
    uint32_t rx_frames, rx_bad, rx_dup, rx_stale;
} link;

/* The model buffer holds the loaded model at one end and the one being
 * uploaded at the other: model[cur] runs, model[!cur] is where a commit
 * verifies the new file before it replaces the loaded one. */
static struct {
    int active; /* between LOAD_BEGIN and LOAD_COMMIT */
    uint32_t size, crc, received;
    uint32_t at; /* where the upload goes in model_buf */
    int loaded;  /* lnn_init accepted model_buf[loaded_at, + loaded_size) */
    int in_flash; /* ... or the resident model (then not in model_buf) */
    uint32_t loaded_at, loaded_size, loaded_crc;
    int cur;
    lnn_model model[LNN_CAN_LOAD ? 2 : 1];
} ld;

/* This image in flash (size 0 on a host build): its CRC-32, once at boot. */
static struct {
    const uint8_t *start;
    size_t size;
    uint32_t crc;
    lnn_status resident; /* what lnn_init said of the resident model */
} image;

#define LOADED (&ld.model[ld.cur])

void (*lnn_dev_on_request)(const uint8_t *frame, size_t n);

/* ---- little helpers -------------------------------------------------------- */

static void wr16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t mix32(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x7FEB352Du;
    h ^= h >> 15;
    h *= 0x846CA68Bu;
    h ^= h >> 16;
    return h;
}

/* ---- frames out ---------------------------------------------------------------- */

static size_t frame_seal(uint8_t *raw, uint8_t type, uint16_t seq, uint32_t nonce, size_t len)
{
    raw[LNN_FH_TYPE] = type;
    raw[LNN_FH_FLAGS] = 0;
    wr16(raw + LNN_FH_SEQ, seq);
    wr32(raw + LNN_FH_NONCE, nonce);
    wr16(raw + LNN_FH_LEN, (uint32_t)len);
    wr16(raw + LNN_FH_RESERVED, 0);
    const size_t body = LNN_P_HEADER_SIZE + len;
    wr32(raw + body, lnn_crc32(0, raw, body));
    return body + LNN_P_CRC_SIZE;
}

/* The bytes of a frame on their way out, in pieces of up to 64 (fewer
 * board_write calls than one a byte). */
typedef struct {
    uint8_t b[64];
    size_t n;
} wire_out;

static void wire_put(wire_out *w, uint8_t b)
{
    if (w->n == sizeof w->b) {
        board_write(w->b, w->n);
        w->n = 0;
    }
    w->b[w->n++] = b;
}

/* Writes 0x00, COBS(raw), 0x00 (the leading zero ends whatever noise came
 * before), the same bytes as lnn_cobs_encode, encoded on the way out. */
static void wire_send(const uint8_t *raw, size_t n)
{
    wire_out w = {{0}, 0};
    wire_put(&w, 0);
    for (size_t start = 0;;) {
        size_t end = start;
        while (end < n && raw[end] != 0 && end - start < 254u)
            end++;
        const uint8_t code = (uint8_t)(end - start + 1u);
        wire_put(&w, code);
        for (size_t i = start; i < end; i++)
            wire_put(&w, raw[i]);
        if (code == 0xFF) /* a full piece: no zero implied, another piece follows */
            start = end;
        else if (end < n) /* the zero that ended this piece */
            start = end + 1u;
        else
            break;
    }
    wire_put(&w, 0);
    board_write(w.b, w.n);
}

/* A frame that is not an answer (NAK, BOOT, PROGRESS): not kept for resending. */
static void send_small(uint8_t type, uint16_t seq, const uint8_t *payload, size_t len)
{
    memcpy(small_raw + LNN_P_HEADER_SIZE, payload, len);
    wire_send(small_raw, frame_seal(small_raw, type, seq, link.session, len));
}

/* Sends the answer whose payload (len bytes) is in TX_PAYLOAD, and keeps it. */
static void answer(uint8_t type, uint16_t seq, size_t len)
{
    tx_raw_len = frame_seal(tx_raw, type, seq, link.session, len);
    link.have_last = 1;
    wire_send(tx_raw, tx_raw_len);
}

/* ERROR (vm/PROTOCOL.md section 10): u8 domain, u8 detail, u16 code, u32
 * offset, u32 values[3]. Numbers only: the host names the code from
 * lnn_status.def / lnn_proto.def and words the detail's values from its
 * DETAIL line, so the image links no error text. */
static void error_answer(uint16_t seq, uint8_t domain, uint32_t code, uint32_t offset, lnn_error_detail d,
                         uint32_t a, uint32_t b, uint32_t c)
{
    uint8_t *p = TX_PAYLOAD;
    const uint32_t w[4] = {offset, a, b, c};
    p[0] = domain;
    p[1] = (uint8_t)d;
    wr16(p + 2, code);
    for (size_t i = 0; i < 4; i++)
        wr32(p + 4u + 4u * i, w[i]);
    answer(LNN_F_ERROR, seq, LNN_P_ERROR_SIZE);
}

static void fail_detail(uint16_t seq, lnn_proto_error e, lnn_error_detail d, uint32_t a, uint32_t b, uint32_t c)
{
    error_answer(seq, LNN_P_DOMAIN_PROTOCOL, e, 0xFFFFFFFFu, d, a, b, c);
}

static void fail(uint16_t seq, lnn_proto_error e)
{
    fail_detail(seq, e, LNN_D_NONE, 0, 0, 0);
}

static void vm_fail(uint16_t seq, lnn_status s, uint32_t offset)
{
    error_answer(seq, LNN_P_DOMAIN_VM, (uint32_t)s, offset, LNN_D_NONE, 0, 0, 0);
}

static void nak(lnn_nak_reason r)
{
    const uint8_t p[4] = {(uint8_t)r, 0, 0, 0};
    link.rx_bad++;
    send_small(LNN_F_NAK, link.last_seq, p, sizeof p);
}

/* ---- info: binary, little-endian (vm/PROTOCOL.md section 8) ----------------------------- */

/* The reply being written into TX_PAYLOAD; a field that does not fit is left
 * out with everything after it (the host reports a reply cut short). */
typedef struct {
    uint8_t *p, *end;
} info_out;

/* n bytes of src, or n zeros when src is NULL */
static void put(info_out *o, const void *src, size_t n)
{
    if ((size_t)(o->end - o->p) < n) {
        o->p = o->end;
        return;
    }
    if (src)
        memcpy(o->p, src, n);
    else
        memset(o->p, 0, n);
    o->p += n;
}

static void put32(info_out *o, uint32_t v)
{
    uint8_t b[4];
    wr32(b, v);
    put(o, b, 4);
}

/* s and its NUL (a byte at a time: strlen would link more than this loop) */
static void put_str(info_out *o, const char *s)
{
    do
        put(o, s, 1);
    while (*s++);
}

/* Device part: u16 protocol, u8 flags, u8 0, then u32 fields, then strings (NUL-terminated). */
static void device_info(info_out *o)
{
    uint32_t exc = 0, pc = 0;
    const int faulted = board_last_fault(&exc, &pc);
    const uint32_t flags = (ld.loaded ? LNN_P_INFO_LOADED : 0u) | (faulted ? LNN_P_INFO_FAULT : 0u);
    const uint32_t head = LNN_P_PROTOCOL_VERSION | flags << 16;
    const uint32_t field[] = {head, (uint32_t)image.resident, LNN_MODEL_MAX, LNN_ARENA_SIZE, LNN_MAX_PAYLOAD,
                              board_clock_hz(), link.session, board_boot_count(), exc, pc, link.rx_frames,
                              link.rx_bad, link.rx_dup, link.rx_stale, board_rx_dropped(), (uint32_t)image.size,
                              image.crc};
    for (size_t i = 0; i < sizeof field / sizeof field[0]; i++)
        put32(o, field[i]);
    const char *str[] = {LNN_FW_IMAGE " " LNN_FW_VERSION, board_name(), LNN_TARGET_NAME, LNN_ARCH_NAME,
                         lnn_version(), ld.loaded ? lnn_isa(LOADED) : lnn_kernel_set_name(0),
                         board_cycle_counter()};
    for (size_t i = 0; i < sizeof str / sizeof str[0]; i++)
        put_str(o, str[i]);
    const char *k; /* the kernel sets compiled in, comma-separated */
    for (uint32_t i = 0; (k = lnn_kernel_set_name(i)) != NULL; i++)
        for (put(o, ",", i ? 1u : 0u); *k; k++)
            put(o, k, 1);
    put(o, "", 1);
}

/* Model part (when one is loaded): u32 fields, the SHA-256 the build recorded
 * (64 hex digits; zeros for an uploaded model), then the file's 32-byte tensor
 * entry of each input and each output. */
static void model_info(info_out *o)
{
    const lnn_model *m = LOADED;
    const uint32_t field[] = {ld.loaded_crc, lnn_rd32(m->buf + LNN_H_VERSION_MAJOR), ld.loaded_size,
                              m->num_tensors, m->code_words, m->consts_size, m->arena_fixed, m->arena_row,
                              lnn_max_batch(m), m->state_row, lnn_num_inputs(m) | lnn_num_outputs(m) << 16};
    for (size_t i = 0; i < sizeof field / sizeof field[0]; i++)
        put32(o, field[i]);
    const char *sha = NULL; /* zeros */
#if LNN_RESIDENT_MODEL
    if (ld.in_flash)
        sha = lnn_resident_sha256;
#endif
    put(o, sha, 64);
    for (uint32_t i = 0; i < lnn_num_inputs(m); i++)
        put(o, lnn_tensor_entry(m, m->input_tensor[i]), LNN_TENSOR_ENTRY_SIZE);
    for (uint32_t i = 0; i < lnn_num_outputs(m); i++)
        put(o, lnn_tensor_entry(m, m->output_tensor[i]), LNN_TENSOR_ENTRY_SIZE);
}

/* Answers HELLO, INFO (device part, then the model part if one is loaded) or LOAD_COMMIT (the model part). */
static void answer_info(uint8_t type, uint16_t seq, int device)
{
    info_out o = {TX_PAYLOAD, TX_PAYLOAD + LNN_MAX_PAYLOAD};
    if (device)
        device_info(&o);
    if (ld.loaded)
        model_info(&o);
    answer(type | LNN_P_OK_BIT, seq, (size_t)(o.p - TX_PAYLOAD));
}

/* ---- commands ---------------------------------------------------------------- */

static void cmd_hello(uint16_t seq, const uint8_t *p, size_t len)
{
    if (len != 8) {
        fail(seq, LNN_PE_E_PAYLOAD);
        return;
    }
    if (lnn_rd16(p) != LNN_P_PROTOCOL_VERSION) {
        fail_detail(seq, LNN_PE_E_VERSION, LNN_D_VERSION, LNN_P_PROTOCOL_VERSION, 0, 0);
        return;
    }
    if (link.session == 0) {
        /* fixed for this boot: device entropy mixed with the host's salt */
        uint32_t s = mix32(link.pool ^ board_entropy() ^ mix32(lnn_rd32(p + 4) + board_cycles()));
        link.session = s ? s : 1u;
    }
    answer_info(LNN_F_HELLO, seq, 1);
}

static void cmd_info(uint16_t seq, size_t len)
{
    if (len != 0) {
        fail(seq, LNN_PE_E_PAYLOAD);
        return;
    }
    answer_info(LNN_F_INFO, seq, 1);
}

static void cmd_load_begin(uint16_t seq, const uint8_t *p, size_t len)
{
    if (len != 8) {
        fail(seq, LNN_PE_E_PAYLOAD);
        return;
    }
    const uint32_t size = lnn_rd32(p), crc = lnn_rd32(p + 4);
    if (size == 0) {
        fail(seq, LNN_PE_E_PAYLOAD);
        return;
    }
    if (size > LNN_MODEL_MAX) {
        fail_detail(seq, LNN_PE_E_TOO_BIG, LNN_CAN_LOAD ? LNN_D_TOO_BIG : LNN_D_NO_UPLOADS, size, LNN_MODEL_MAX, 0);
        return;
    }
    /* beside the loaded model: at the start if it sits at the end, else at
     * the 64-aligned end (the VM wants the file 4-aligned) */
    uint32_t at = 0;
    if (ld.loaded && !ld.in_flash) {
        const int at_start = ld.loaded_at == 0;
        at = at_start ? (LNN_MODEL_MAX - size) & ~63u : 0;
        const int fits = at_start ? at >= ld.loaded_size : size <= ld.loaded_at;
        if (!fits) {
            fail_detail(seq, LNN_PE_E_NO_ROOM, LNN_D_NO_ROOM, size, ld.loaded_size, LNN_MODEL_MAX);
            return;
        }
    }
    ld.active = 1;
    ld.size = size;
    ld.crc = crc;
    ld.received = 0;
    ld.at = at;
    answer(LNN_F_LOAD_BEGIN | LNN_P_OK_BIT, seq, 0);
}

#if LNN_CAN_LOAD
static void cmd_load_chunk(uint16_t seq, const uint8_t *p, size_t len)
{
    if (len < 4) {
        fail(seq, LNN_PE_E_PAYLOAD);
        return;
    }
    if (!ld.active) {
        fail(seq, LNN_PE_E_LOAD_STATE);
        return;
    }
    const uint32_t offset = lnn_rd32(p);
    const uint32_t n = (uint32_t)len - 4u;
    if (offset > ld.received) {
        fail_detail(seq, LNN_PE_E_LOAD_STATE, LNN_D_CHUNK_AT, offset, ld.received, 0);
        return;
    }
    if (n > ld.size - offset) {
        fail(seq, LNN_PE_E_PAYLOAD);
        return;
    }
    memcpy(model_buf + ld.at + offset, p + 4, n);
    if (offset + n > ld.received)
        ld.received = offset + n;
    wr32(TX_PAYLOAD, ld.received);
    answer(LNN_F_LOAD_CHUNK | LNN_P_OK_BIT, seq, 4);
}

static void cmd_load_commit(uint16_t seq, size_t len)
{
    if (len != 0) {
        fail(seq, LNN_PE_E_PAYLOAD);
        return;
    }
    if (!ld.active) {
        fail(seq, LNN_PE_E_LOAD_STATE);
        return;
    }
    ld.active = 0;
    if (ld.received != ld.size) {
        fail(seq, LNN_PE_E_INCOMPLETE);
        return;
    }
    const uint8_t *file = model_buf + ld.at;
    const uint32_t crc = lnn_crc32(0, file, ld.size);
    if (crc != ld.crc) {
        fail_detail(seq, LNN_PE_E_TRANSFER_CRC, LNN_D_TRANSFER_CRC, crc, ld.crc, 0);
        return;
    }
    /* Verified into the other lnn_model first: lnn_init writes to the arena
     * only once every check has passed, so a refused file leaves the loaded
     * model, its arena and its state as they were. Accepted, it is bound
     * again to the zeroed arena: nothing of the old model stays. */
    lnn_model *next = &ld.model[!ld.cur];
    const lnn_status s = lnn_init(next, file, ld.size, arena, sizeof arena);
    if (s != LNN_OK) {
        vm_fail(seq, s, lnn_error_offset(next));
        return;
    }
    memset(arena, 0, sizeof arena);
    const lnn_status again = lnn_init(next, file, ld.size, arena, sizeof arena);
    if (again != LNN_OK) {
        /* the same bytes and arena passed a moment ago; should that ever
         * change, no model is loaded rather than one half bound */
        ld.loaded = 0;
        vm_fail(seq, again, lnn_error_offset(next));
        return;
    }
    ld.cur = !ld.cur;
    ld.loaded = 1;
    ld.in_flash = 0;
    ld.loaded_at = ld.at;
    ld.loaded_size = ld.size;
    ld.loaded_crc = crc;
    answer_info(LNN_F_LOAD_COMMIT, seq, 0);
}
#else
/* No upload buffer: LOAD_BEGIN never succeeds, so a chunk or a commit is
 * always out of place. */
static void cmd_load_chunk(uint16_t seq, const uint8_t *p, size_t len)
{
    (void)p;
    (void)len;
    fail(seq, LNN_PE_E_LOAD_STATE);
}

static void cmd_load_commit(uint16_t seq, size_t len)
{
    (void)len;
    fail(seq, LNN_PE_E_LOAD_STATE);
}
#endif

/* The cycles of each chunk of a RUN (lnn_run_rows calls run_chunk_done
 * after each), and a PROGRESS frame every progress_every cycles between
 * chunks; the time of sending it is not counted in the next chunk. */
typedef struct {
    uint8_t *cycles; /* u32 per chunk, in the answer */
    uint16_t seq;
    uint32_t nchunks, t0, last_sign, progress_every;
} run_clock;

static void run_chunk_done(void *ctx, size_t chunk, uint32_t rows)
{
    (void)rows;
    run_clock *rc = ctx;
    const uint32_t t1 = board_cycles();
    const uint32_t c = (uint32_t)chunk;
    wr32(rc->cycles + 4u * c, t1 - rc->t0);
    if (c + 1u < rc->nchunks && t1 - rc->last_sign >= rc->progress_every) {
        uint8_t pr[4];
        wr16(pr, c + 1u);
        wr16(pr + 2, rc->nchunks);
        send_small(LNN_F_PROGRESS, rc->seq, pr, sizeof pr);
        rc->last_sign = t1;
    }
    rc->t0 = board_cycles();
}

static void cmd_run(uint16_t seq, const uint8_t *p, size_t len)
{
    const uint32_t started = board_cycles();
    if (!ld.loaded) {
        fail(seq, LNN_PE_E_NO_MODEL);
        return;
    }
    if (len < 4) {
        fail(seq, LNN_PE_E_PAYLOAD);
        return;
    }
    lnn_model *m = LOADED;
    const uint32_t rows = lnn_rd16(p), batch = lnn_rd16(p + 2);
    if (rows == 0 || batch == 0) {
        fail(seq, LNN_PE_E_ROWS);
        return;
    }
    const uint32_t chunk = batch < rows ? batch : rows;
    if (chunk > lnn_max_batch(m)) {
        error_answer(seq, LNN_P_DOMAIN_VM, LNN_E_BATCH, 0xFFFFFFFFu, LNN_D_BATCH, chunk, lnn_max_batch(m), 0);
        return;
    }
    const uint32_t ni = lnn_num_inputs(m), no = lnn_num_outputs(m);
    const uint32_t nchunks = (rows + chunk - 1u) / chunk;

    /* sizes in 64 bits: rows * row elements cannot overflow them; pointers
     * only once the sizes are known to fit */
    uint32_t in_at[LNN_MAX_IO], out_at[LNN_MAX_IO];
    uint64_t need = 4;
    for (uint32_t i = 0; i < ni; i++) {
        in_at[i] = (uint32_t)(need > LNN_MAX_PAYLOAD ? LNN_MAX_PAYLOAD : need);
        need += (uint64_t)(lnn_input_batched(m, i) ? rows : 1u) * lnn_input_row_elems(m, i) * 4u;
    }
    if (need != len) {
        fail_detail(seq, LNN_PE_E_PAYLOAD, LNN_D_INPUT_BYTES, rows,
                    (uint32_t)(need > 0xFFFFFFFFu ? 0xFFFFFFFFu : need) - 4u, (uint32_t)len - 4u);
        return;
    }
    uint64_t out_len = 4u + 4u * (uint64_t)nchunks;
    for (uint32_t i = 0; i < no; i++) {
        out_at[i] = (uint32_t)(out_len > LNN_MAX_PAYLOAD ? LNN_MAX_PAYLOAD : out_len);
        out_len += (uint64_t)(lnn_output_batched(m, i) ? rows : 1u) * lnn_output_row_elems(m, i) * 4u;
    }
    if (out_len > LNN_MAX_PAYLOAD) {
        fail_detail(seq, LNN_PE_E_ROWS, LNN_D_OUTPUT_BYTES, rows, LNN_MAX_PAYLOAD, 0);
        return;
    }
    /* payloads start 4-aligned (rx_raw, tx_raw + header), every field is 4 bytes wide */
    const float *in[LNN_MAX_IO];
    float *out[LNN_MAX_IO];
    for (uint32_t i = 0; i < ni; i++)
        in[i] = (const float *)(const void *)(p + in_at[i]);
    for (uint32_t i = 0; i < no; i++)
        out[i] = (float *)(void *)(TX_PAYLOAD + out_at[i]);
    run_clock rc = {TX_PAYLOAD + 4, seq, nchunks, started, started, board_clock_hz() / 4u};
    memset(rc.cycles, 0, (size_t)(out_len - 4u));
    rc.t0 = board_cycles();
    const lnn_status s = lnn_run_rows(m, in, out, rows, chunk, run_chunk_done, &rc);
    if (s != LNN_OK) {
        vm_fail(seq, s, 0xFFFFFFFFu);
        return;
    }
    wr16(TX_PAYLOAD, rows);
    wr16(TX_PAYLOAD + 2, nchunks);
    answer(LNN_F_RUN | LNN_P_OK_BIT, seq, (size_t)out_len);
}

static void cmd_reset_state(uint16_t seq, const uint8_t *p, size_t len)
{
    if (len != 4) {
        fail(seq, LNN_PE_E_PAYLOAD);
        return;
    }
    const uint32_t flags = lnn_rd32(p);
    if (flags & ~1u) {
        fail(seq, LNN_PE_E_PAYLOAD);
        return;
    }
    if (flags & 1u) {
        ld.loaded = 0;
        ld.in_flash = 0;
        ld.active = 0;
        memset(arena, 0, sizeof arena); /* nothing of the unloaded model stays */
    } else if (ld.loaded) {
        /* a stateful model's streams start from zero state; the rest of the
         * arena is the model's (float16 constants widened by lnn_init) */
        lnn_reset(LOADED);
    }
    answer(LNN_F_RESET_STATE | LNN_P_OK_BIT, seq, 0);
}

#ifdef LNN_PROFILE
/* ---- PROFILE (the profiling image only: -DLNN_PROFILE) --------------------------
 * The loaded model's bundled test case 0 (batch 1) run `runs` times with the
 * VM's per-pc counters (lnnvm.h) on the board's cycle counter, and `runs`
 * times without, alternating, each run timed from outside; then the hook's
 * own cost over PROFILE_MARKS back-to-back marks. Answer: u32 code words,
 * runs, whole-run cycles without the counters, with them, the calibration's
 * cycles, PROFILE_MARKS; then u32 cycles, u32 calls per pc. */
#ifndef LNN_PROFILE_MAX_PCS
#define LNN_PROFILE_MAX_PCS 256
#endif
enum { PROFILE_MARKS = 1000, PROFILE_HEAD = 24 };
static lnn_profile_counter prof_counter[LNN_PROFILE_MAX_PCS];

uint32_t lnn_profile_clock(void)
{
    return board_cycles();
}

static void cmd_profile(uint16_t seq, const uint8_t *p, size_t len)
{
    if (!ld.loaded) {
        fail(seq, LNN_PE_E_NO_MODEL);
        return;
    }
    if (len != 4 || lnn_rd32(p) == 0) {
        fail(seq, LNN_PE_E_PAYLOAD);
        return;
    }
    lnn_model *m = LOADED;
    const uint32_t runs = lnn_rd32(p), words = lnn_code_words(m);
    lnn_tests ts;
    const uint32_t ni = lnn_num_inputs(m), no = lnn_num_outputs(m);
    size_t out_at = PROFILE_HEAD + 8u * (size_t)words;
    /* the outputs go to the answer buffer past the counters, unsent */
    const float *in[LNN_MAX_IO];
    float *out[LNN_MAX_IO];
    const float *x = NULL;
    if (lnn_get_tests(m, &ts))
        x = ts.inputs;
    for (uint32_t i = 0; x && i < ni; i++) {
        in[i] = x;
        x += lnn_input_row_elems(m, i);
    }
    for (uint32_t i = 0; i < no; i++) {
        out[i] = (float *)(void *)(TX_PAYLOAD + out_at);
        out_at += 4u * lnn_output_row_elems(m, i);
    }
    if (!x || words > LNN_PROFILE_MAX_PCS || out_at > LNN_MAX_PAYLOAD) {
        fail(seq, LNN_PE_E_ROWS); /* no test case to run, or the counters do not fit */
        return;
    }
    memset(prof_counter, 0, sizeof prof_counter);
    lnn_profile prof = {prof_counter, LNN_PROFILE_MAX_PCS, LNN_PROFILE_NONE, 0};
    uint32_t whole[2] = {0, 0};
    for (uint32_t r = 0; r < runs; r++)
        for (uint32_t on = 0; on < 2; on++) {
            lnn_set_profile(m, on ? &prof : NULL);
            lnn_reset(m);
            const uint32_t t0 = board_cycles();
            const lnn_status s = lnn_run(m, in, out, 1);
            whole[on] += board_cycles() - t0;
            if (s != LNN_OK) {
                lnn_set_profile(m, NULL);
                vm_fail(seq, s, 0xFFFFFFFFu);
                return;
            }
        }
    lnn_set_profile(m, NULL);
    const uint32_t head[6] = {words, runs, whole[0], whole[1], (uint32_t)lnn_profile_overhead(PROFILE_MARKS),
                              PROFILE_MARKS};
    for (uint32_t i = 0; i < 6; i++)
        wr32(TX_PAYLOAD + 4u * i, head[i]);
    for (uint32_t pc = 0; pc < words; pc++) {
        wr32(TX_PAYLOAD + PROFILE_HEAD + 8u * pc, (uint32_t)prof_counter[pc].ticks);
        wr32(TX_PAYLOAD + PROFILE_HEAD + 8u * pc + 4u, (uint32_t)prof_counter[pc].calls);
    }
    answer(LNN_F_PROFILE | LNN_P_OK_BIT, seq, PROFILE_HEAD + 8u * (size_t)words);
}
#endif

/* ---- frames in ------------------------------------------------------------------ */

static void on_frame(void)
{
    if (rx_overlong) {
        nak(LNN_NAK_OVERLONG);
        return;
    }
    const size_t n = lnn_cobs_decode(rx_raw, rx_n, rx_raw, LNN_FRAME_MAX); /* in place */
    if (n == (size_t)-1) {
        nak(LNN_NAK_COBS);
        return;
    }
    if (n < LNN_P_HEADER_SIZE + LNN_P_CRC_SIZE) {
        nak(LNN_NAK_SHORT);
        return;
    }
    const uint32_t crc = lnn_rd32(rx_raw + n - LNN_P_CRC_SIZE);
    if (lnn_crc32(0, rx_raw, n - LNN_P_CRC_SIZE) != crc) {
        nak(LNN_NAK_CRC);
        return;
    }
    const size_t len = lnn_rd16(rx_raw + LNN_FH_LEN);
    if (len + LNN_P_HEADER_SIZE + LNN_P_CRC_SIZE != n) {
        nak(LNN_NAK_LENGTH);
        return;
    }
    link.rx_frames++;
    const uint8_t type = rx_raw[LNN_FH_TYPE];
    const uint16_t seq = (uint16_t)lnn_rd16(rx_raw + LNN_FH_SEQ);
    const uint32_t nonce = lnn_rd32(rx_raw + LNN_FH_NONCE);
    if (type & LNN_P_OK_BIT)
        return; /* a device frame (a loop-back line?): never answer those */
    if (link.have_last && seq == link.last_seq && crc == link.last_crc) {
        link.rx_dup++;
        wire_send(tx_raw, tx_raw_len);
        return;
    }
    /* The host sends each request once with the next seq and repeats only
     * the last one, so an intact request that is not newer than the last
     * (serial-number order, RFC 1982) is an earlier frame again: a line or
     * relay that duplicates or reorders. It is dropped, not executed twice.
     * HELLO opens a host session at any seq; its random salt makes a HELLO
     * identical to the last one a replay too. */
    const int stale = type == LNN_F_HELLO
                          ? link.have_hello && crc == link.hello_crc
                          : link.have_seq && (uint16_t)(seq - link.last_seq - 1u) >= 0x7FFFu;
    if (stale) {
        link.rx_stale++;
        return;
    }
    if (type == LNN_F_HELLO) {
        link.have_hello = 1;
        link.hello_crc = crc;
    }
    if (lnn_dev_on_request)
        lnn_dev_on_request(rx_raw, n);
    link.have_last = 0;
    link.have_seq = 1;
    link.last_seq = seq;
    link.last_crc = crc;
    const uint8_t *p = rx_raw + LNN_P_HEADER_SIZE;
    if (rx_raw[LNN_FH_FLAGS] != 0 || lnn_rd16(rx_raw + LNN_FH_RESERVED) != 0) {
        fail(seq, LNN_PE_E_HEADER);
        return;
    }
    if (type != LNN_F_HELLO && (link.session == 0 || nonce != link.session)) {
        fail_detail(seq, LNN_PE_E_SESSION, LNN_D_SESSION, nonce, link.session, 0);
        return;
    }
    switch (type) {
    case LNN_F_HELLO:
        cmd_hello(seq, p, len);
        break;
    case LNN_F_INFO:
        cmd_info(seq, len);
        break;
    case LNN_F_LOAD_BEGIN:
        cmd_load_begin(seq, p, len);
        break;
    case LNN_F_LOAD_CHUNK:
        cmd_load_chunk(seq, p, len);
        break;
    case LNN_F_LOAD_COMMIT:
        cmd_load_commit(seq, len);
        break;
    case LNN_F_RUN:
        cmd_run(seq, p, len);
        break;
    case LNN_F_RESET_STATE:
        cmd_reset_state(seq, p, len);
        break;
#ifdef LNN_PROFILE
    case LNN_F_PROFILE:
        cmd_profile(seq, p, len);
        break;
#endif
    default:
        fail(seq, LNN_PE_E_TYPE);
        break;
    }
}

void lnn_dev_byte(uint8_t b)
{
    if (link.session == 0)
        link.pool = mix32(link.pool ^ board_cycles() ^ b);
    if (b == 0) {
        if (rx_n || rx_overlong)
            on_frame();
        rx_n = 0;
        rx_overlong = 0;
        return;
    }
    if (rx_n < sizeof rx_raw)
        rx_raw[rx_n++] = b;
    else
        rx_overlong = 1;
}

#if LNN_RESIDENT_MODEL
/* The model built into the image, verified where it lies; refused, the
 * device runs without a model and INFO says why (resident_error). */
static void resident_load(void)
{
    const uint32_t size = (uint32_t)(lnn_resident_model_end - lnn_resident_model);
    memset(arena, 0, sizeof arena);
    const lnn_status s = lnn_init(&ld.model[0], lnn_resident_model, size, arena, sizeof arena);
    if (s != LNN_OK) {
        image.resident = s;
        return;
    }
    ld.cur = 0;
    ld.loaded = 1;
    ld.in_flash = 1;
    ld.loaded_size = size;
    ld.loaded_crc = lnn_crc32(0, lnn_resident_model, size);
}
#endif

void lnn_dev_init(void)
{
    image.start = board_image(&image.size);
    if (image.size) /* the image may start at address 0 (nRF51, MPS2): its size says whether there is one */
        image.crc = lnn_crc32(0, image.start, image.size);
#if LNN_RESIDENT_MODEL
    resident_load();
#endif
    link.pool = board_entropy();
    uint8_t p[8];
    wr16(p, LNN_P_PROTOCOL_VERSION);
    wr16(p + 2, 0);
    wr32(p + 4, LNN_MAX_PAYLOAD);
    send_small(LNN_F_BOOT, 0, p, sizeof p);
}
