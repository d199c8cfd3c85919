/*
 * graph.c - the graph ops (CONV2D, MAXPOOL2D, AVGPOOL2D, SOFTMAX,
 * LOG_SOFTMAX, REDUCE_SUM, REDUCE_MEAN, MATMUL): their shape rules for the
 * verifier and their execution for the interpreter. The rules are in
 * lnn_opcodes.def; here they are checked against the tensor table, so a file
 * whose shapes were edited by hand is rejected (E_SHAPE) or its parameter
 * field A (E_OPERAND) before anything runs.
 *
 * Execution reads the shapes from the (verified) tensor table when the
 * instruction runs: these ops do enough work per element that the few reads
 * do not matter, and the run plan stays as it is.
 */
#include "graph.h"

#include "kernels.h"

/* a batched dim 0 is the batch symbol: equal only to another batched dim 0 */
static int lnn_g_batched(const lnn_tensor *t)
{
    return (t->flags & LNN_TF_BATCH) != 0;
}

/* rank 4 image: (N, C, H, W) */
static int lnn_g_image(const lnn_tensor *t)
{
    return t->rank == 4;
}

/* Same dim 0 (the batch symbol or the same count). */
static int lnn_g_same_n(const lnn_tensor *a, const lnn_tensor *b)
{
    return lnn_g_batched(a) == lnn_g_batched(b) && a->dims[0] == b->dims[0];
}

static lnn_status lnn_g_conv(uint32_t a, const lnn_tensor *d, const lnn_tensor *x,
                             const lnn_tensor *w, const lnn_tensor *bias)
{
    const uint32_t s = (a & 0xFu) + 1u, pad = a >> 4;
    if (!lnn_g_image(x) || !lnn_g_image(d) || w->rank != 4 || lnn_g_batched(w) ||
        bias->rank != 1 || lnn_g_batched(bias))
        return LNN_E_SHAPE;
    const uint64_t hp = (uint64_t)x->dims[2] + 2u * pad, wp = (uint64_t)x->dims[3] + 2u * pad;
    if (w->dims[1] != x->dims[1] || bias->dims[0] != w->dims[0] || w->dims[2] > hp ||
        w->dims[3] > wp)
        return LNN_E_SHAPE;
    if (pad >= w->dims[2] || pad >= w->dims[3])
        return LNN_E_OPERAND; /* a window entirely in the padding */
    return lnn_g_same_n(d, x) && d->dims[1] == w->dims[0] &&
                   d->dims[2] == (hp - w->dims[2]) / s + 1 && d->dims[3] == (wp - w->dims[3]) / s + 1
               ? LNN_OK
               : LNN_E_SHAPE;
}

static lnn_status lnn_g_pool(uint32_t a, const lnn_tensor *d, const lnn_tensor *x)
{
    const uint32_t k = (a & 0xFu) + 1u, s = (a >> 4) + 1u;
    if (!lnn_g_image(x) || !lnn_g_image(d) || x->dims[2] < k || x->dims[3] < k)
        return LNN_E_SHAPE;
    return lnn_g_same_n(d, x) && d->dims[1] == x->dims[1] && d->dims[2] == (x->dims[2] - k) / s + 1 &&
                   d->dims[3] == (x->dims[3] - k) / s + 1
               ? LNN_OK
               : LNN_E_SHAPE;
}

static int lnn_g_same_shape(const lnn_tensor *a, const lnn_tensor *b)
{
    if (a->rank != b->rank || lnn_g_batched(a) != lnn_g_batched(b))
        return 0;
    for (uint32_t i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i])
            return 0;
    return 1;
}

static lnn_status lnn_g_reduce(uint32_t a, const lnn_tensor *d, const lnn_tensor *x)
{
    if (a >= x->rank)
        return LNN_E_OPERAND;
    if (a == 0 && lnn_g_batched(x))
        return LNN_E_SHAPE; /* never across the batch */
    if (lnn_g_batched(d) != lnn_g_batched(x))
        return LNN_E_SHAPE;
    if (d->rank == x->rank) { /* the axis kept as 1 */
        for (uint32_t i = 0; i < x->rank; i++)
            if (d->dims[i] != (i == a ? 1u : x->dims[i]))
                return LNN_E_SHAPE;
        return LNN_OK;
    }
    if (d->rank + 1 != x->rank || d->rank == 0)
        return LNN_E_SHAPE; /* removed (a scalar result has no batch to carry) */
    for (uint32_t i = 0, j = 0; i < x->rank; i++) {
        if (i == a)
            continue;
        if (d->dims[j++] != x->dims[i])
            return LNN_E_SHAPE;
    }
    return LNN_OK;
}

static lnn_status lnn_g_matmul(const lnn_tensor *d, const lnn_tensor *x, const lnn_tensor *y)
{
    const uint32_t r = x->rank;
    const int shared = y->rank == 2 && !lnn_g_batched(y); /* one b for every matrix of x */
    if (r < 2 || y->rank < 2 || (lnn_g_batched(x) && r < 3 && !shared))
        return LNN_E_SHAPE; /* K concrete; M the batch only against a shared b: (B, K) @ (K, N) */
    const uint32_t mm = x->dims[r - 2], k = x->dims[r - 1];
    const uint32_t n = y->dims[y->rank - 1];
    if (y->dims[y->rank - 2] != k)
        return LNN_E_SHAPE;
    if (!shared) { /* per matrix: the same leading dims */
        if (y->rank != r || lnn_g_batched(y) != lnn_g_batched(x))
            return LNN_E_SHAPE;
        for (uint32_t i = 0; i + 2 < r; i++)
            if (y->dims[i] != x->dims[i])
                return LNN_E_SHAPE;
    }
    if (d->rank != r || lnn_g_batched(d) != lnn_g_batched(x))
        return LNN_E_SHAPE;
    for (uint32_t i = 0; i + 2 < r; i++)
        if (d->dims[i] != x->dims[i])
            return LNN_E_SHAPE;
    return d->dims[r - 2] == mm && d->dims[r - 1] == n ? LNN_OK : LNN_E_SHAPE; /* a batch M: 1 == 1 */
}

/* 0 in a selective build without any graph op (internal.h): the functions
 * below are then never called (the verifier refuses the ops with
 * E_NOT_LINKED first) and reduce to nothing. */
#define LNN_GRAPH_LINKED                                                       \
    (LNN_OP_LINKED(CONV2D) || LNN_OP_LINKED(MAXPOOL2D) ||                      \
     LNN_OP_LINKED(AVGPOOL2D) || LNN_OP_LINKED(SOFTMAX) ||                     \
     LNN_OP_LINKED(LOG_SOFTMAX) || LNN_OP_LINKED(REDUCE_SUM) ||                \
     LNN_OP_LINKED(REDUCE_MEAN) || LNN_OP_LINKED(MATMUL))

lnn_status lnn_graph_check(uint32_t op, uint32_t a, const lnn_tensor *d, const lnn_tensor *x0,
                           const lnn_tensor *x1, const lnn_tensor *x2)
{
    if (!LNN_GRAPH_LINKED)
        return LNN_E_NOT_LINKED;
    switch (op) {
    case LNN_OP_CONV2D:
        return lnn_g_conv(a, d, x0, x1, x2);
    case LNN_OP_MAXPOOL2D:
    case LNN_OP_AVGPOOL2D:
        return lnn_g_pool(a, d, x0);
    case LNN_OP_SOFTMAX:
    case LNN_OP_LOG_SOFTMAX: /* axis A < rank of B: checked with the format (DSTAX) */
        return lnn_g_same_shape(d, x0) && !(a == 0 && lnn_g_batched(d)) ? LNN_OK : LNN_E_SHAPE;
    case LNN_OP_REDUCE_SUM:
    case LNN_OP_REDUCE_MEAN:
        return lnn_g_reduce(a, d, x0);
    case LNN_OP_MATMUL:
        return lnn_g_matmul(d, x0, x1);
    default:
        return LNN_E_OPCODE;
    }
}

static uint64_t lnn_g_elems(const lnn_tensor *t)
{
    return lnn_tensor_elems(t);
}

uint64_t lnn_graph_macs(uint32_t op, uint32_t a, const lnn_tensor *d, const lnn_tensor *x0,
                        const lnn_tensor *x1)
{
    if (!LNN_GRAPH_LINKED)
        return 0;
    switch (op) {
    case LNN_OP_CONV2D: /* every output: C x kh x kw, the weight of its channel */
        return lnn_g_elems(d) / x1->dims[0] * lnn_g_elems(x1);
    case LNN_OP_MAXPOOL2D:
    case LNN_OP_AVGPOOL2D: { /* every output: its k x k window */
        const uint64_t k = (a & 0xFu) + 1u;
        return lnn_g_elems(d) * k * k;
    }
    case LNN_OP_MATMUL: /* every output: K */
        return lnn_g_elems(d) * x0->dims[x0->rank - 1];
    default: /* SOFTMAX .. REDUCE_MEAN: a few passes over the elements */
        return 0;
    }
}

/* ---- execution ------------------------------------------------------------------- */

_Static_assert((LNN_MAX_RANK & (LNN_MAX_RANK - 1)) == 0, "lnn_g_dim masks i with LNN_MAX_RANK - 1");

/* dim i of t in this run: the batch for a batched dim 0 */
static size_t lnn_g_dim(const lnn_tensor *t, uint32_t i, size_t batch)
{
    /* i < rank <= LNN_MAX_RANK (verified); the mask tells gcc -O3, which
     * otherwise warns of a read past dims */
    return i == 0 && lnn_g_batched(t) ? batch : t->dims[i & (LNN_MAX_RANK - 1)];
}

/* (outer, n, inner) of t around axis */
static void lnn_g_axis(const lnn_tensor *t, uint32_t axis, size_t batch, lnn_axis_params *p)
{
    p->outer = p->inner = 1;
    for (uint32_t i = 0; i < t->rank; i++) {
        const size_t dim = lnn_g_dim(t, i, batch);
        if (i < axis)
            p->outer *= dim;
        else if (i > axis)
            p->inner *= dim;
        else
            p->n = dim;
    }
}

void lnn_graph_exec(const lnn_model *m, uint32_t op, uint32_t a, uint32_t dst, const uint16_t *src,
                    size_t batch, float *y, const float *const *x)
{
    if (!LNN_GRAPH_LINKED)
        return;
    const lnn_kernels *k = m->kernels;
    lnn_tensor d, t0, t1;
    lnn_tensor_read(m, dst, &d);
    lnn_tensor_read(m, src[0], &t0);
    switch (op) {
    case LNN_OP_CONV2D: {
        lnn_conv2d_params p;
        lnn_tensor_read(m, src[1], &t1);
        p.y = y;
        p.x = x[0];
        p.w = x[1];
        p.bias = x[2];
        p.count = lnn_g_dim(&t0, 0, batch);
        p.c = t0.dims[1];
        p.h = t0.dims[2];
        p.wd = t0.dims[3];
        p.o = t1.dims[0];
        p.kh = t1.dims[2];
        p.kw = t1.dims[3];
        p.oh = d.dims[2];
        p.ow = d.dims[3];
        p.stride = (a & 0xFu) + 1u;
        p.pad = a >> 4;
        k->conv2d(&p);
        break;
    }
    case LNN_OP_MAXPOOL2D:
    case LNN_OP_AVGPOOL2D: {
        lnn_pool2d_params p;
        p.y = y;
        p.x = x[0];
        p.planes = lnn_g_dim(&t0, 0, batch) * t0.dims[1];
        p.h = t0.dims[2];
        p.wd = t0.dims[3];
        p.oh = d.dims[2];
        p.ow = d.dims[3];
        p.k = (a & 0xFu) + 1u;
        p.stride = (a >> 4) + 1u;
        (op == LNN_OP_MAXPOOL2D ? k->maxpool2d : k->avgpool2d)(&p);
        break;
    }
    case LNN_OP_SOFTMAX:
    case LNN_OP_LOG_SOFTMAX:
    case LNN_OP_REDUCE_SUM:
    case LNN_OP_REDUCE_MEAN: {
        lnn_axis_params p;
        p.y = y;
        p.x = x[0];
        lnn_g_axis(&t0, a, batch, &p);
        (op == LNN_OP_SOFTMAX       ? k->softmax
         : op == LNN_OP_LOG_SOFTMAX ? k->log_softmax
         : op == LNN_OP_REDUCE_SUM  ? k->reduce_sum
                                    : k->reduce_mean)(&p);
        break;
    }
    case LNN_OP_MATMUL: {
        lnn_matmul_params p;
        lnn_tensor_read(m, src[1], &t1);
        const uint32_t r = t0.rank;
        p.y = y;
        p.a = x[0];
        p.b = x[1];
        p.m = lnn_g_dim(&t0, r - 2, batch); /* the batch for (B, K) @ (K, N) */
        p.k = t0.dims[r - 1];
        p.n = t1.dims[t1.rank - 1];
        p.count = 1;
        for (uint32_t i = 0; i + 2 < r; i++)
            p.count *= lnn_g_dim(&t0, i, batch);
        p.b_step = t1.rank == 2 && !lnn_g_batched(&t1) ? 0 : p.k * p.n;
        k->matmul(&p);
        break;
    }
    default: /* the verifier admits no other op here */
        break;
    }
}
