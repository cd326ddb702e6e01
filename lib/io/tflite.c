/* TensorFlow Lite importer: a small bounds-checked FlatBuffers reader for
 * exactly the schema tables libaibox needs (tensorflow/lite/schema/schema.fbs),
 * and the conversion of a MobileNet-style graph (NHWC, OHWI filters, uint8/int8
 * quantisation) into an aibox_model (NCHW, OIHW, float32).
 *
 * Every offset, vtable, vector and string is checked against the file size
 * with overflow-safe arithmetic before it is read; a malformed file is refused
 * with AIBOX_E_FORMAT and one line naming the file and the fault.
 *
 * Memory: what a file can make the importer allocate is bounded before it is
 * allocated. A FlatBuffer vector of N tables costs only 4N bytes and its
 * offsets may all name one table, so the counts of operator codes, tensors
 * and operators are capped (TFL_MAX_*: ~25 MB of bookkeeping at most, far
 * above real models); parameters come only from constant tensors whose bytes
 * are in the file, and since operators may share one constant, the weights
 * all operators take together may not exceed the file's size (one float per
 * file byte: uint8 weights expand 4x, as they must). Everything that can
 * refuse a file (shapes, constants' sizes and values, quantisation, labels,
 * metadata) is checked before aibox_model_finish allocates the parameters,
 * so a refusal costs the file and the graph, never the network. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/core.h"
#include "io/model_io.h"
#include "io/tflite.h"
#include "nn/nn.h" /* an 8-bit model's integer tables */

#define TFL_MAX_FILE ((size_t)1 << 31)
#define TFL_MAX_DIMS 8
#define TFL_MAX_CODES 4096           /* operator codes (TFLite has ~200 builtins) */
#define TFL_MAX_TENSORS (1u << 16)   /* tensors of the subgraph (MobileNets: ~100-200) */
#define TFL_MAX_OPS (1u << 14)       /* operators (each may add up to 3 graph nodes) */

/* ------------------------------------------------------------------ reader */
typedef struct fb {
    const uint8_t *b;
    size_t n;
    const char *name;
    aibox_error *err;
} fb;

typedef struct fb_table {
    size_t pos, vt;
    unsigned vtsize, tsize;
} fb_table;

typedef struct fb_vec {
    size_t pos; /* first element */
    uint32_t len;
} fb_vec;

static aibox_status bad(const fb *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static aibox_status bad(const fb *f, const char *fmt, ...)
{
    char what[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return aibox_fail(f->err, AIBOX_E_FORMAT, "%s: %s", f->name, what);
}

static int has(const fb *f, size_t pos, size_t len) { return pos <= f->n && len <= f->n - pos; }
static uint16_t u16_at(const fb *f, size_t p) { return (uint16_t)(f->b[p] | (f->b[p + 1] << 8)); }
static uint32_t u32_at(const fb *f, size_t p)
{
    return (uint32_t)f->b[p] | ((uint32_t)f->b[p + 1] << 8) | ((uint32_t)f->b[p + 2] << 16) |
           ((uint32_t)f->b[p + 3] << 24);
}
static uint64_t u64_at(const fb *f, size_t p) { return (uint64_t)u32_at(f, p) | ((uint64_t)u32_at(f, p + 4) << 32); }
static float f32_at(const fb *f, size_t p)
{
    uint32_t u = u32_at(f, p);
    float x;
    memcpy(&x, &u, 4);
    return x;
}

/* Follows the uoffset stored at pos. */
static aibox_status deref(const fb *f, size_t pos, size_t *target, const char *what)
{
    if (!has(f, pos, 4)) return bad(f, "%s: offset field outside the file", what);
    uint32_t u = u32_at(f, pos);
    if (u == 0 || (size_t)u > f->n - pos) return bad(f, "%s: offset %u points outside the file", what, u);
    *target = pos + u;
    return AIBOX_OK;
}

static aibox_status table_at(const fb *f, size_t pos, fb_table *t, const char *what)
{
    if (!has(f, pos, 4) || (pos & 3)) return bad(f, "%s: table at %zu is outside the file or misaligned", what, pos);
    int32_t so = (int32_t)u32_at(f, pos);
    int64_t vt = (int64_t)pos - (int64_t)so;
    if (vt < 0 || (uint64_t)vt > f->n || (vt & 1) || !has(f, (size_t)vt, 4))
        return bad(f, "%s: vtable offset %d points outside the file", what, so);
    t->pos = pos;
    t->vt = (size_t)vt;
    t->vtsize = u16_at(f, t->vt);
    t->tsize = u16_at(f, t->vt + 2);
    if (t->vtsize < 4 || (t->vtsize & 1) || !has(f, t->vt, t->vtsize))
        return bad(f, "%s: vtable size %u is invalid", what, t->vtsize);
    if (t->tsize < 4 || !has(f, pos, t->tsize)) return bad(f, "%s: table size %u runs past the file", what, t->tsize);
    return AIBOX_OK;
}

/* Position of field id of the given size; *present = 0 when absent. */
static aibox_status field(const fb *f, const fb_table *t, int id, size_t size, size_t *pos, int *present,
                          const char *what)
{
    size_t slot = 4 + 2 * (size_t)id;
    *present = 0;
    if (slot + 2 > t->vtsize) return AIBOX_OK;
    unsigned off = u16_at(f, t->vt + slot);
    if (!off) return AIBOX_OK;
    if (off < 4 || off > t->tsize || size > t->tsize - off)
        return bad(f, "%s: field %d (offset %u, %zu bytes) lies outside its table", what, id, off, size);
    *pos = t->pos + off;
    *present = 1;
    return AIBOX_OK;
}

static aibox_status get_int(const fb *f, const fb_table *t, int id, size_t size, int sgn, int64_t def, int64_t *v,
                            const char *what)
{
    size_t p = 0;
    int pr;
    aibox_status s = field(f, t, id, size, &p, &pr, what);
    if (s) return s;
    if (!pr) {
        *v = def;
        return AIBOX_OK;
    }
    if (size == 1) *v = sgn ? (int64_t)(int8_t)f->b[p] : (int64_t)f->b[p];
    else if (size == 2) *v = sgn ? (int64_t)(int16_t)u16_at(f, p) : (int64_t)u16_at(f, p);
    else if (size == 4) *v = sgn ? (int64_t)(int32_t)u32_at(f, p) : (int64_t)u32_at(f, p);
    else *v = (int64_t)u64_at(f, p);
    return AIBOX_OK;
}

static aibox_status get_float(const fb *f, const fb_table *t, int id, float def, float *v, const char *what)
{
    size_t p = 0;
    int pr;
    aibox_status s = field(f, t, id, 4, &p, &pr, what);
    if (s) return s;
    *v = pr ? f32_at(f, p) : def;
    return AIBOX_OK;
}

static aibox_status get_table(const fb *f, const fb_table *t, int id, fb_table *sub, int *present, const char *what)
{
    size_t p = 0, tgt = 0;
    aibox_status s = field(f, t, id, 4, &p, present, what);
    if (s || !*present) return s;
    if ((s = deref(f, p, &tgt, what))) return s;
    return table_at(f, tgt, sub, what);
}

static aibox_status get_vec(const fb *f, const fb_table *t, int id, size_t elem, fb_vec *v, int *present,
                            const char *what)
{
    size_t p = 0, tgt = 0, bytes;
    aibox_status s = field(f, t, id, 4, &p, present, what);
    v->pos = 0;
    v->len = 0;
    if (s || !*present) return s;
    if ((s = deref(f, p, &tgt, what))) return s;
    if (!has(f, tgt, 4)) return bad(f, "%s: vector length outside the file", what);
    v->len = u32_at(f, tgt);
    v->pos = tgt + 4;
    if (!aibox_mul_ok(v->len, elem, &bytes) || !has(f, v->pos, bytes))
        return bad(f, "%s: vector of %u elements runs past the end of the file", what, v->len);
    return AIBOX_OK;
}

static aibox_status vec_table(const fb *f, const fb_vec *v, uint32_t i, fb_table *t, const char *what)
{
    size_t tgt = 0;
    aibox_status s = deref(f, v->pos + 4 * (size_t)i, &tgt, what);
    if (s) return s;
    return table_at(f, tgt, t, what);
}

static aibox_status get_string(const fb *f, const fb_table *t, int id, char *out, size_t cap, const char *what)
{
    fb_vec v;
    int pr;
    aibox_status s = get_vec(f, t, id, 1, &v, &pr, what);
    out[0] = 0;
    if (s || !pr) return s;
    if (!has(f, v.pos, (size_t)v.len + 1)) return bad(f, "%s: string runs past the end of the file", what);
    size_t k = v.len < cap - 1 ? v.len : cap - 1;
    for (size_t i = 0; i < k; i++) {
        char c = (char)f->b[v.pos + i];
        out[i] = (c >= 32 && c < 127) ? c : '?';
    }
    out[k] = 0;
    return AIBOX_OK;
}

/* ------------------------------------------------------------------ schema */
enum { T_FLOAT32 = 0, T_FLOAT16 = 1, T_INT32 = 2, T_UINT8 = 3, T_INT64 = 4, T_INT8 = 9 };
enum {
    OP_ADD = 0, OP_AVERAGE_POOL_2D = 1, OP_CONCATENATION = 2, OP_CONV_2D = 3, OP_DEPTHWISE_CONV_2D = 4,
    OP_FULLY_CONNECTED = 9, OP_MAX_POOL_2D = 17, OP_RESHAPE = 22, OP_SOFTMAX = 25, OP_PAD = 34, OP_MEAN = 40,
    OP_SQUEEZE = 43
};
enum { ACT_NONE = 0, ACT_RELU = 1, ACT_RELU6 = 3 };

static const char *const k_op_names[] = {
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE", "DEQUANTIZE",
    "EMBEDDING_LOOKUP", "FLOOR", "FULLY_CONNECTED", "HASHTABLE_LOOKUP", "L2_NORMALIZATION", "L2_POOL_2D",
    "LOCAL_RESPONSE_NORMALIZATION", "LOGISTIC", "LSH_PROJECTION", "LSTM", "MAX_POOL_2D", "MUL", "RELU",
    "RELU_N1_TO_1", "RELU6", "RESHAPE", "RESIZE_BILINEAR", "RNN", "SOFTMAX", "SPACE_TO_DEPTH", "SVDF", "TANH",
    "CONCAT_EMBEDDINGS", "SKIP_GRAM", "CALL", "CUSTOM", "EMBEDDING_LOOKUP_SPARSE", "PAD",
    "UNIDIRECTIONAL_SEQUENCE_RNN", "GATHER", "BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND", "TRANSPOSE", "MEAN", "SUB",
    "DIV", "SQUEEZE", "UNIDIRECTIONAL_SEQUENCE_LSTM", "STRIDED_SLICE", "BIDIRECTIONAL_SEQUENCE_RNN", "EXP",
    "TOPK_V2", "SPLIT", "LOG_SOFTMAX", "DELEGATE", "BIDIRECTIONAL_SEQUENCE_LSTM", "CAST", "PRELU", "MAXIMUM",
    "ARG_MAX", "MINIMUM", "LESS", "NEG", "PADV2", "GREATER", "GREATER_EQUAL", "LESS_EQUAL", "SELECT", "SLICE",
    "SIN", "TRANSPOSE_CONV", "SPARSE_TO_DENSE", "TILE", "EXPAND_DIMS", "EQUAL", "NOT_EQUAL", "LOG", "SUM", "SQRT",
    "RSQRT", "SHAPE", "POW", "ARG_MIN", "FAKE_QUANT", "REDUCE_PROD", "REDUCE_MAX", "PACK", "LOGICAL_OR",
    "ONE_HOT", "LOGICAL_AND", "LOGICAL_NOT", "UNPACK", "REDUCE_MIN", "FLOOR_DIV", "REDUCE_ANY", "SQUARE",
    "ZEROS_LIKE", "FILL", "FLOOR_MOD", "RANGE", "RESIZE_NEAREST_NEIGHBOR", "LEAKY_RELU", "SQUARED_DIFFERENCE",
    "MIRROR_PAD", "ABS", "SPLIT_V", "UNIQUE", "CEIL", "REVERSE_V2", "ADD_N", "GATHER_ND", "COS", "WHERE", "RANK",
    "ELU", "REVERSE_SEQUENCE", "MATRIX_DIAG", "QUANTIZE", "MATRIX_SET_DIAG", "ROUND", "HARD_SWISH", "IF", "WHILE",
    "NON_MAX_SUPPRESSION_V4", "NON_MAX_SUPPRESSION_V5", "SCATTER_ND", "SELECT_V2", "DENSIFY", "SEGMENT_SUM",
    "BATCH_MATMUL"};

static const char *op_name(int64_t code, char *buf, size_t cap)
{
    if (code >= 0 && code < (int64_t)(sizeof k_op_names / sizeof k_op_names[0])) return k_op_names[code];
    snprintf(buf, cap, "builtin operator %lld", (long long)code);
    return buf;
}

typedef struct tfl_tensor {
    int ndim, shape[TFL_MAX_DIMS];
    int type;
    uint32_t buffer;
    char name[64];
    fb_vec scale, zp; /* float32 / int64 vectors (len 0: none) */
    int qdim;
} tfl_tensor;

typedef struct tfl_op {
    int64_t code;
    fb_vec in, out; /* int32 vectors */
    fb_table opt;
    int has_opt;
} tfl_op;

typedef struct tfl {
    fb f;
    int64_t *codes;
    uint32_t n_codes;
    fb_vec buffers;
    tfl_tensor *t;
    uint32_t n_t;
    tfl_op *ops;
    uint32_t n_ops;
    fb_vec sg_in, sg_out;
} tfl;

static aibox_status parse(tfl *m)
{
    fb *f = &m->f;
    aibox_status s;
    fb_table root, sg;
    fb_vec codes, subgraphs, tensors, ops;
    int pr;
    int64_t v;
    char what[96];

    if (f->n < 8) return bad(f, "only %zu bytes, too short for a TensorFlow Lite file", f->n);
    if (memcmp(f->b + 4, "TFL3", 4) != 0) return bad(f, "no \"TFL3\" identifier: not a TensorFlow Lite model");
    size_t rp = 0;
    if ((s = deref(f, 0, &rp, "root")) || (s = table_at(f, rp, &root, "model"))) return s;
    if ((s = get_int(f, &root, 0, 4, 0, 0, &v, "model.version"))) return s;
    if (v != 3) return bad(f, "schema version %lld, expected 3", (long long)v);
    if ((s = get_vec(f, &root, 1, 4, &codes, &pr, "model.operator_codes"))) return s;
    if ((s = get_vec(f, &root, 2, 4, &subgraphs, &pr, "model.subgraphs"))) return s;
    if (subgraphs.len < 1) return bad(f, "the model has no subgraph");
    if ((s = get_vec(f, &root, 4, 4, &m->buffers, &pr, "model.buffers"))) return s;

    if (codes.len > TFL_MAX_CODES) return bad(f, "%u operator codes, more than the %u libaibox reads", codes.len, TFL_MAX_CODES);
    m->n_codes = codes.len;
    m->codes = calloc(codes.len ? codes.len : 1, sizeof *m->codes);
    if (!m->codes) return aibox_fail(f->err, AIBOX_E_NOMEM, "%s: out of memory", f->name);
    for (uint32_t i = 0; i < codes.len; i++) {
        fb_table oc;
        int64_t dep, bc;
        snprintf(what, sizeof what, "operator code %u", i);
        if ((s = vec_table(f, &codes, i, &oc, what))) return s;
        if ((s = get_int(f, &oc, 0, 1, 1, 0, &dep, what)) || (s = get_int(f, &oc, 3, 4, 1, 0, &bc, what))) return s;
        m->codes[i] = dep > bc ? dep : bc;
    }

    if ((s = vec_table(f, &subgraphs, 0, &sg, "subgraph 0"))) return s;
    if ((s = get_vec(f, &sg, 0, 4, &tensors, &pr, "subgraph.tensors"))) return s;
    if ((s = get_vec(f, &sg, 1, 4, &m->sg_in, &pr, "subgraph.inputs"))) return s;
    if ((s = get_vec(f, &sg, 2, 4, &m->sg_out, &pr, "subgraph.outputs"))) return s;
    if ((s = get_vec(f, &sg, 3, 4, &ops, &pr, "subgraph.operators"))) return s;

    if (tensors.len > TFL_MAX_TENSORS || ops.len > TFL_MAX_OPS)
        return bad(f, "%u tensors and %u operators, more than the %u and %u libaibox imports", tensors.len, ops.len,
                   TFL_MAX_TENSORS, TFL_MAX_OPS);
    m->n_t = tensors.len;
    m->t = calloc(tensors.len ? tensors.len : 1, sizeof *m->t);
    m->n_ops = ops.len;
    m->ops = calloc(ops.len ? ops.len : 1, sizeof *m->ops);
    if (!m->t || !m->ops) return aibox_fail(f->err, AIBOX_E_NOMEM, "%s: out of memory", f->name);
    for (uint32_t i = 0; i < tensors.len; i++) {
        tfl_tensor *t = &m->t[i];
        fb_table tt, q;
        fb_vec shape;
        snprintf(what, sizeof what, "tensor %u", i);
        if ((s = vec_table(f, &tensors, i, &tt, what))) return s;
        if ((s = get_vec(f, &tt, 0, 4, &shape, &pr, what))) return s;
        if (shape.len > TFL_MAX_DIMS) return bad(f, "tensor %u has %u dimensions", i, shape.len);
        t->ndim = (int)shape.len;
        for (uint32_t d = 0; d < shape.len; d++) {
            int32_t x = (int32_t)u32_at(f, shape.pos + 4 * (size_t)d);
            if (x < 0 || x > (1 << 24)) return bad(f, "tensor %u has dimension %d", i, x);
            t->shape[d] = x;
        }
        if ((s = get_int(f, &tt, 1, 1, 1, 0, &v, what))) return s;
        t->type = (int)v;
        if ((s = get_int(f, &tt, 2, 4, 0, 0, &v, what))) return s;
        t->buffer = (uint32_t)v;
        if (t->buffer >= m->buffers.len) return bad(f, "tensor %u names buffer %u of %u", i, t->buffer, m->buffers.len);
        if ((s = get_string(f, &tt, 3, t->name, sizeof t->name, what))) return s;
        if ((s = get_table(f, &tt, 4, &q, &pr, what))) return s;
        if (pr) {
            if ((s = get_vec(f, &q, 2, 4, &t->scale, &pr, what)) || (s = get_vec(f, &q, 3, 8, &t->zp, &pr, what)))
                return s;
            if ((s = get_int(f, &q, 6, 4, 1, 0, &v, what))) return s;
            if (t->scale.len > 1 && (v < 0 || v >= t->ndim || (int64_t)t->shape[v] != (int64_t)t->scale.len))
                return bad(f, "tensor %u: %u scales do not fit quantized dimension %lld", i, t->scale.len,
                           (long long)v);
            if (t->zp.len != 0 && t->zp.len != t->scale.len)
                return bad(f, "tensor %u: %u zero points for %u scales", i, t->zp.len, t->scale.len);
            t->qdim = (int)(t->scale.len > 1 ? v : 0);
            for (uint32_t k = 0; k < t->scale.len; k++) {
                float sc = f32_at(f, t->scale.pos + 4 * (size_t)k);
                if (!(sc > 0.0f) || !isfinite(sc)) return bad(f, "tensor %u: quantisation scale %g", i, sc);
            }
            /* 32-bit zero points keep every (q - zp) in range (fuzzing found an int64 overflow) */
            for (uint32_t k = 0; k < t->zp.len; k++) {
                int64_t zp = (int64_t)u64_at(f, t->zp.pos + 8 * (size_t)k);
                if (zp < INT32_MIN || zp > INT32_MAX) return bad(f, "tensor %u: zero point %lld", i, (long long)zp);
            }
        }
    }
    for (uint32_t i = 0; i < ops.len; i++) {
        tfl_op *o = &m->ops[i];
        fb_table ot;
        snprintf(what, sizeof what, "operator %u", i);
        if ((s = vec_table(f, &ops, i, &ot, what))) return s;
        if ((s = get_int(f, &ot, 0, 4, 0, 0, &v, what))) return s;
        if ((uint64_t)v >= m->n_codes) return bad(f, "operator %u uses opcode %lld of %u", i, (long long)v, m->n_codes);
        o->code = m->codes[v];
        if ((s = get_vec(f, &ot, 1, 4, &o->in, &pr, what)) || (s = get_vec(f, &ot, 2, 4, &o->out, &pr, what)))
            return s;
        for (uint32_t k = 0; k < o->in.len + o->out.len; k++) {
            int32_t x = (int32_t)u32_at(f, k < o->in.len ? o->in.pos + 4 * (size_t)k : o->out.pos + 4 * (size_t)(k - o->in.len));
            if (x < -1 || (x >= 0 && (uint32_t)x >= m->n_t)) return bad(f, "operator %u names tensor %d", i, x);
        }
        if ((s = get_table(f, &ot, 4, &o->opt, &o->has_opt, what))) return s;
    }
    for (uint32_t k = 0; k < m->sg_in.len + m->sg_out.len; k++) {
        int32_t x = (int32_t)u32_at(f, k < m->sg_in.len ? m->sg_in.pos + 4 * (size_t)k : m->sg_out.pos + 4 * (size_t)(k - m->sg_in.len));
        if (x < 0 || (uint32_t)x >= m->n_t) return bad(f, "the subgraph names tensor %d as input or output", x);
    }
    return AIBOX_OK;
}

static int vec_i32(const tfl *m, const fb_vec *v, uint32_t i)
{
    return i < v->len ? (int32_t)u32_at(&m->f, v->pos + 4 * (size_t)i) : -1;
}

/* A tensor's constant data: its buffer's bytes (*len 0 when none). */
static aibox_status tensor_data(const tfl *m, int ti, size_t *pos, size_t *len)
{
    const fb *f = &m->f;
    fb_table bt;
    fb_vec d;
    int pr;
    char what[64];
    snprintf(what, sizeof what, "buffer %u", m->t[ti].buffer);
    aibox_status s = vec_table(f, &m->buffers, m->t[ti].buffer, &bt, what);
    if (s) return s;
    if ((s = get_vec(f, &bt, 0, 1, &d, &pr, what))) return s;
    *pos = d.pos;
    *len = d.len;
    return AIBOX_OK;
}

/* Element count; SIZE_MAX when it overflows (8 dims of up to 2^24 can), so
 * it never equals a real size. */
static size_t tensor_count(const tfl_tensor *t)
{
    size_t c = 1;
    for (int d = 0; d < t->ndim; d++)
        if (!aibox_mul_ok(c, (size_t)t->shape[d], &c)) return SIZE_MAX;
    return c;
}

static int is_quant(const tfl_tensor *t) { return (t->type == T_UINT8 || t->type == T_INT8) && t->scale.len > 0; }

static float q_scale(const tfl *m, const tfl_tensor *t, uint32_t ch)
{
    return f32_at(&m->f, t->scale.pos + 4 * (size_t)(t->scale.len > 1 ? ch : 0));
}
static int64_t q_zp(const tfl *m, const tfl_tensor *t, uint32_t ch)
{
    if (!t->zp.len) return 0;
    return (int64_t)u64_at(&m->f, t->zp.pos + 8 * (size_t)(t->zp.len > 1 ? ch : 0));
}

/* A constant's buffer holds exactly its elements. Checked while the graph is
 * built, before the model allocates parameters for the constant: a few bytes
 * of file must not be able to ask for gigabytes (found by fuzzing). */
/* Bytes per element of the constant types libaibox reads; 0 for any other. */
static size_t elem_size(int type)
{
    switch (type) {
    case T_FLOAT32: case T_INT32: return 4;
    case T_UINT8: case T_INT8: return 1;
    default: return 0;
    }
}

static aibox_status check_const(const tfl *m, int ti, const char *what)
{
    const fb *f = &m->f;
    const tfl_tensor *t = &m->t[ti];
    size_t pos, len, esz = elem_size(t->type), count = tensor_count(t);
    aibox_status s = tensor_data(m, ti, &pos, &len);
    if (s) return s;
    if (!esz)
        return aibox_fail(f->err, AIBOX_E_UNSUPPORTED, "%s: %s: tensor %d (%s) has type %d, which libaibox does not import",
                          f->name, what, ti, t->name, t->type);
    if (count == SIZE_MAX || len / esz != count || len % esz)
        return bad(f, "%s: constant tensor %d (%s) holds %zu bytes for its shape", what, ti, t->name, len);
    return AIBOX_OK;
}

/* Dequantises a constant tensor into out (count floats, TFLite order); with
 * out NULL only checks that it would succeed (sizes, scale, finite values),
 * which the graph builder does before the parameters exist. */
static aibox_status load_const(const tfl *m, int ti, float *out, size_t count, const char *what)
{
    const fb *f = &m->f;
    const tfl_tensor *t = &m->t[ti];
    size_t pos, len, esz = elem_size(t->type);
    aibox_status s = check_const(m, ti, what); /* type, and bytes for the shape */
    if (!s) s = tensor_data(m, ti, &pos, &len);
    if (s) return s;
    if (tensor_count(t) != count)
        return bad(f, "%s: tensor %d (%s) has %zu elements, expected %zu", what, ti, t->name, tensor_count(t), count);
    if (t->type != T_FLOAT32 && t->scale.len == 0)
        return bad(f, "%s: integer tensor %d (%s) has no quantisation scale", what, ti, t->name);
    size_t inner = 1;
    uint32_t dimlen = 1;
    if (t->scale.len > 1) {
        for (int d = t->qdim + 1; d < t->ndim; d++) inner *= (size_t)t->shape[d];
        dimlen = (uint32_t)t->shape[t->qdim];
    }
    for (size_t i = 0; i < count; i++) {
        uint32_t ch = t->scale.len > 1 ? (uint32_t)((i / inner) % dimlen) : 0;
        const uint8_t *p = f->b + pos + i * esz;
        float x;
        switch (t->type) {
        case T_FLOAT32: x = f32_at(f, pos + 4 * i); break;
        case T_INT32: x = (float)((double)q_scale(m, t, ch) * (double)((int32_t)u32_at(f, pos + 4 * i) - q_zp(m, t, ch))); break;
        case T_UINT8: x = (float)((double)q_scale(m, t, ch) * (double)((int64_t)p[0] - q_zp(m, t, ch))); break;
        default: x = (float)((double)q_scale(m, t, ch) * (double)((int64_t)(int8_t)p[0] - q_zp(m, t, ch))); break;
        }
        if (!isfinite(x)) return bad(f, "%s: tensor %d (%s) holds a non-finite value", what, ti, t->name);
        if (out) out[i] = x;
    }
    return AIBOX_OK;
}

/* ------------------------------------------------------------------ import */

typedef struct pending {
    int node, op, kind; /* kind: 0 conv, 1 depthwise, 2 dense */
    int in_c, in_h, in_w; /* dense: the input map (NHWC flatten order) */
} pending;

static void same_pad(int in, int k, int stride, int same, int *before, int *after, int *out)
{
    if (!same) {
        *before = *after = 0;
        *out = (in - k) / stride + 1;
        return;
    }
    int o = (in + stride - 1) / stride;
    long tot = (long)(o - 1) * stride + k - in;
    if (tot < 0) tot = 0;
    *before = (int)(tot / 2);
    *after = (int)(tot - tot / 2);
    *out = o;
}

/* The library's one whole-file reader, capped at what this reader handles. */
static aibox_status read_file(const char *path, uint8_t **buf, size_t *len, aibox_error *err)
{
    return aibox_read_file(path, TFL_MAX_FILE, buf, len, err);
}

/* The per-sample (c, h, w) of a TFLite activation tensor (NHWC or [1, N]). */
static int act_shape(const tfl_tensor *t, int *c, int *h, int *w)
{
    if (t->ndim == 4 && t->shape[0] == 1) {
        *h = t->shape[1], *w = t->shape[2], *c = t->shape[3];
        return 1;
    }
    if (t->ndim == 2 && t->shape[0] == 1) {
        *c = t->shape[1], *h = 1, *w = 1;
        return 1;
    }
    return 0;
}

typedef struct builder {
    tfl *m;
    aibox_model *am;
    int *node_of;
    const aibox_import_opts *o;
    aibox_error *err;
    size_t weights; /* weight values the operators so far take, shared constants counted each time */
} builder;

/* Checks an operator's constants now, before any parameter exists: the
 * weights (wi, count values) and the bias (bi, -1 for none: zeros, out
 * values), and that all operators' weights together stay within the file's
 * size (a constant shared by many operators must not multiply memory). */
static aibox_status take_consts(builder *b, int opi, const char *name, int wi, size_t count, int bi, size_t out)
{
    const tfl *m = b->m;
    const fb *f = &m->f;
    char what[64];
    aibox_status s;
    snprintf(what, sizeof what, "operator %d (%s)", opi, name);
    if ((s = load_const(m, wi, NULL, count, what))) return s;
    if (bi >= 0 && (s = load_const(m, bi, NULL, out, what))) return s;
    if (count > f->n - b->weights)
        return bad(f, "%s: the operators' weights add up to more values than the file's %zu bytes hold (a constant "
                   "used by many operators)", what, f->n);
    b->weights += count;
    return AIBOX_OK;
}

static aibox_status opt_int(builder *b, const tfl_op *o, int id, size_t size, int64_t def, int64_t *v)
{
    if (!o->has_opt) {
        *v = def;
        return AIBOX_OK;
    }
    return get_int(&b->m->f, &o->opt, id, size, 1, def, v, "builtin options");
}

/* The activation and the quantised output range after an op. */
static int finish_output(builder *b, int node, int ti, int act, int clamp_it, const char *opname, int opi)
{
    const tfl_tensor *t = &b->m->t[ti];
    if (node < 0) return node;
    if (is_quant(t) && clamp_it) {
        float sc = q_scale(b->m, t, 0);
        int64_t zp = q_zp(b->m, t, 0);
        int qmin = t->type == T_UINT8 ? 0 : -128, qmax = t->type == T_UINT8 ? 255 : 127;
        float lo = (float)((double)sc * (double)(qmin - zp)), hi = (float)((double)sc * (double)(qmax - zp));
        if (act == ACT_RELU || act == ACT_RELU6) lo = lo > 0 ? lo : 0;
        if (act == ACT_RELU6) hi = hi < 6 ? hi : 6;
        if (hi < lo) hi = lo;
        node = aibox_clamp(b->am, node, lo, hi);
        if (b->o && b->o->faithful && t->scale.len == 1)
            node = aibox_quantize(b->am, node, sc, (float)zp, (float)qmin, (float)qmax);
    } else if (act == ACT_RELU) {
        node = aibox_relu(b->am, node);
    } else if (act == ACT_RELU6) {
        node = aibox_relu6(b->am, node);
    } else if (act != ACT_NONE) {
        aibox_fail(b->err, AIBOX_E_UNSUPPORTED, "%s: operator %d (%s) has fused activation %d, which libaibox does not import",
                   b->m->f.name, opi, opname, act);
        return -AIBOX_E_UNSUPPORTED;
    }
    return node;
}

static aibox_status build_op(builder *b, int opi, pending *pend, int *n_pend)
{
    tfl *m = b->m;
    const fb *f = &m->f;
    const tfl_op *o = &m->ops[opi];
    char nbuf[48], what[32];
    const char *name = op_name(o->code, nbuf, sizeof nbuf);
    snprintf(what, sizeof what, "operator %d", opi);
    int x = vec_i32(m, &o->in, 0), y = vec_i32(m, &o->out, 0);
    int node = -1, act = ACT_NONE, clamp_it = 1;
    int64_t v;
    aibox_status s;

    if (x < 0 || y < 0) return bad(f, "operator %d (%s) lacks an input or output tensor", opi, name);
    if (b->node_of[x] < 0 && o->code != OP_CONCATENATION)
        return bad(f, "operator %d (%s) reads tensor %d (%s) before anything computes it", opi, name, x, m->t[x].name);
    if (o->out.len != 1) return bad(f, "operator %d (%s) has %u outputs", opi, name, o->out.len);
    if (b->node_of[y] >= 0 || y == x) return bad(f, "operator %d (%s) writes tensor %d twice", opi, name, y);
    int in = b->node_of[x], ic = 0, ih = 0, iw = 0;
    if (in >= 0) aibox_model_node_shape(b->am, in, &ic, &ih, &iw);

    switch (o->code) {
    case OP_CONV_2D:
    case OP_DEPTHWISE_CONV_2D: {
        int dw = o->code == OP_DEPTHWISE_CONV_2D;
        int fi = vec_i32(m, &o->in, 1);
        if (fi < 0) return bad(f, "operator %d (%s) has no filter", opi, name);
        const tfl_tensor *ft = &m->t[fi];
        if (ft->ndim != 4) return bad(f, "operator %d (%s): filter is not 4-D", opi, name);
        if ((s = check_const(m, fi, what))) return s;
        int64_t pad, sw, sh, dil_w, dil_h;
        if ((s = opt_int(b, o, 0, 1, 0, &pad)) || (s = opt_int(b, o, 1, 4, 1, &sw)) || (s = opt_int(b, o, 2, 4, 1, &sh)) ||
            (s = opt_int(b, o, dw ? 4 : 3, 1, 0, &v)) || (s = opt_int(b, o, dw ? 5 : 4, 4, 1, &dil_w)) ||
            (s = opt_int(b, o, dw ? 6 : 5, 4, 1, &dil_h)))
            return s;
        act = (int)v;
        if (dil_w != 1 || dil_h != 1)
            return aibox_fail(b->err, AIBOX_E_UNSUPPORTED, "%s: operator %d (%s) is dilated, which libaibox does not import",
                              f->name, opi, name);
        if (sw < 1 || sh < 1 || sw > 1024 || sh > 1024 || pad < 0 || pad > 1)
            return bad(f, "operator %d (%s): stride %lldx%lld or padding %lld is invalid", opi, name, (long long)sh,
                       (long long)sw, (long long)pad);
        aibox_conv_opts co = {0};
        co.kernel_h = ft->shape[1];
        co.kernel_w = ft->shape[2];
        co.stride_h = (int)sh;
        co.stride_w = (int)sw;
        co.bias = 1;
        if (dw) {
            if (ft->shape[0] != 1 || ic < 1 || ft->shape[3] % ic != 0)
                return bad(f, "operator %d (%s): filter shape does not fit %d input channels", opi, name, ic);
            co.out_channels = ft->shape[3];
            co.groups = ic;
        } else {
            if (ft->shape[3] != ic)
                return bad(f, "operator %d (%s): filter has %d input channels, its input %d", opi, name, ft->shape[3], ic);
            co.out_channels = ft->shape[0];
        }
        int oh, ow;
        same_pad(ih, co.kernel_h, co.stride_h, pad == 0, &co.pad_top, &co.pad_bottom, &oh);
        same_pad(iw, co.kernel_w, co.stride_w, pad == 0, &co.pad_left, &co.pad_right, &ow);
        if ((s = take_consts(b, opi, name, fi, tensor_count(ft), vec_i32(m, &o->in, 2), (size_t)co.out_channels)))
            return s;
        node = aibox_conv2d(b->am, in, &co);
        if (node >= 0) pend[(*n_pend)++] = (pending){node, opi, dw, ic, ih, iw};
        break;
    }
    case OP_AVERAGE_POOL_2D:
    case OP_MAX_POOL_2D: {
        int64_t pad, sw, sh, fw, fh;
        if ((s = opt_int(b, o, 0, 1, 0, &pad)) || (s = opt_int(b, o, 1, 4, 1, &sw)) || (s = opt_int(b, o, 2, 4, 1, &sh)) ||
            (s = opt_int(b, o, 3, 4, 1, &fw)) || (s = opt_int(b, o, 4, 4, 1, &fh)) || (s = opt_int(b, o, 5, 1, 0, &v)))
            return s;
        act = (int)v;
        if (sw < 1 || sh < 1 || fw < 1 || fh < 1 || sw > 1024 || sh > 1024 || fw > 4096 || fh > 4096 || pad < 0 || pad > 1)
            return bad(f, "operator %d (%s): invalid pool options", opi, name);
        aibox_pool_opts po = {0};
        po.kernel_h = (int)fh, po.kernel_w = (int)fw, po.stride_h = (int)sh, po.stride_w = (int)sw;
        int oh, ow;
        same_pad(ih, po.kernel_h, po.stride_h, pad == 0, &po.pad_top, &po.pad_bottom, &oh);
        same_pad(iw, po.kernel_w, po.stride_w, pad == 0, &po.pad_left, &po.pad_right, &ow);
        node = o->code == OP_MAX_POOL_2D ? aibox_maxpool(b->am, in, &po) : aibox_avgpool(b->am, in, &po);
        break;
    }
    case OP_MEAN: {
        int ai = vec_i32(m, &o->in, 1);
        float ax[4];
        if (ai < 0 || m->t[ai].type != T_INT32 || tensor_count(&m->t[ai]) != 2 || m->t[ai].scale.len)
            return aibox_fail(b->err, AIBOX_E_UNSUPPORTED, "%s: operator %d (MEAN) is not a spatial mean", f->name, opi);
        /* int32 axes read raw: load_const would need a scale */
        size_t pos, len;
        if ((s = tensor_data(m, ai, &pos, &len))) return s;
        if (len != 8) return bad(f, "operator %d (MEAN): axis tensor holds %zu bytes", opi, len);
        ax[0] = (float)(int32_t)u32_at(f, pos), ax[1] = (float)(int32_t)u32_at(f, pos + 4);
        if (!((ax[0] == 1 && ax[1] == 2) || (ax[0] == 2 && ax[1] == 1)))
            return aibox_fail(b->err, AIBOX_E_UNSUPPORTED, "%s: operator %d (MEAN) is not over height and width", f->name, opi);
        node = aibox_global_avgpool(b->am, in);
        break;
    }
    case OP_RESHAPE:
    case OP_SQUEEZE: {
        int oc, oh, ow;
        clamp_it = 0;
        if (!act_shape(&m->t[y], &oc, &oh, &ow) || (size_t)oc * oh * ow != (size_t)ic * ih * iw)
            return aibox_fail(b->err, AIBOX_E_UNSUPPORTED, "%s: operator %d (%s) to this shape is not imported", f->name, opi, name);
        if ((ih != 1 || iw != 1) && !(oc == ic && oh == ih && ow == iw))
            return aibox_fail(b->err, AIBOX_E_UNSUPPORTED, "%s: operator %d (%s) of a spatial map is not imported",
                              f->name, opi, name);
        node = (oh == 1 && ow == 1 && ih == 1 && iw == 1) ? aibox_flatten(b->am, in) : in;
        break;
    }
    case OP_SOFTMAX: {
        float beta = 1.0f;
        /* faithful: TFLite's uint8 softmax writes k/256 (its output tensor's grid) */
        clamp_it = b->o && b->o->faithful;
        if (o->has_opt && (s = get_float(f, &o->opt, 0, 1.0f, &beta, "SoftmaxOptions"))) return s;
        if (beta != 1.0f || ih != 1 || iw != 1)
            return aibox_fail(b->err, AIBOX_E_UNSUPPORTED, "%s: operator %d (SOFTMAX) with beta %g over a %dx%d map is not imported",
                              f->name, opi, beta, ih, iw);
        node = aibox_softmax(b->am, in);
        break;
    }
    case OP_FULLY_CONNECTED: {
        int wi = vec_i32(m, &o->in, 1);
        if ((s = opt_int(b, o, 0, 1, 0, &v))) return s;
        act = (int)v;
        if (wi < 0 || m->t[wi].ndim != 2 || (size_t)m->t[wi].shape[1] != (size_t)ic * ih * iw)
            return bad(f, "operator %d (FULLY_CONNECTED): weights do not fit its %dx%dx%d input", opi, ic, ih, iw);
        if ((s = check_const(m, wi, what))) return s;
        if ((s = take_consts(b, opi, name, wi, tensor_count(&m->t[wi]), vec_i32(m, &o->in, 2), (size_t)m->t[wi].shape[0])))
            return s;
        node = aibox_dense(b->am, in, m->t[wi].shape[0], 1);
        if (node >= 0) pend[(*n_pend)++] = (pending){node, opi, 2, ic, ih, iw};
        break;
    }
    case OP_ADD: {
        int x2 = vec_i32(m, &o->in, 1);
        if (x2 < 0 || b->node_of[x2] < 0)
            return bad(f, "operator %d (ADD) reads a tensor before anything computes it", opi);
        if ((s = opt_int(b, o, 0, 1, 0, &v))) return s;
        act = (int)v;
        node = aibox_add(b->am, in, b->node_of[x2]);
        break;
    }
    case OP_CONCATENATION: {
        int ins[16];
        if ((s = opt_int(b, o, 0, 4, 0, &v))) return s;
        int64_t axis = v;
        if ((s = opt_int(b, o, 1, 1, 0, &v))) return s;
        act = (int)v;
        if (o->in.len < 1 || o->in.len > 16 || m->t[y].ndim != 4 || !(axis == 3 || axis == -1))
            return aibox_fail(b->err, AIBOX_E_UNSUPPORTED, "%s: operator %d (CONCATENATION) other than along channels is not imported",
                              f->name, opi);
        for (uint32_t k = 0; k < o->in.len; k++) {
            int xi = vec_i32(m, &o->in, k);
            if (xi < 0 || b->node_of[xi] < 0)
                return bad(f, "operator %d (CONCATENATION) reads a tensor before anything computes it", opi);
            ins[k] = b->node_of[xi];
        }
        node = aibox_concat(b->am, (int)o->in.len, ins);
        break;
    }
    case OP_PAD: {
        int pi = vec_i32(m, &o->in, 1);
        size_t pos, len;
        int32_t p[8];
        if (pi < 0 || tensor_count(&m->t[pi]) != 8) return bad(f, "operator %d (PAD): paddings are not 4x2", opi);
        if ((s = tensor_data(m, pi, &pos, &len))) return s;
        if (len != 32) return bad(f, "operator %d (PAD): paddings hold %zu bytes", opi, len);
        for (int k = 0; k < 8; k++) p[k] = (int32_t)u32_at(f, pos + 4 * (size_t)k);
        if (p[0] || p[1] || p[6] || p[7] || p[2] < 0 || p[3] < 0 || p[4] < 0 || p[5] < 0 || p[2] > 4096 ||
            p[3] > 4096 || p[4] > 4096 || p[5] > 4096)
            return aibox_fail(b->err, AIBOX_E_UNSUPPORTED, "%s: operator %d (PAD) pads other than height and width", f->name, opi);
        node = aibox_zeropad(b->am, in, p[2], p[4], p[3], p[5]);
        break;
    }
    default:
        return aibox_fail(b->err, AIBOX_E_UNSUPPORTED, "%s: operator %d is %s, which libaibox does not import", f->name,
                          opi, name);
    }
    node = finish_output(b, node, y, act, clamp_it, name, opi);
    if (node < 0) {
        if (b->err && b->err->code) return b->err->code;
        return aibox_fail(b->err, -node, "%s: operator %d (%s): %s", f->name, opi, name, aibox_model_last_error(b->am));
    }
    int c, h, w, tc, th, tw;
    aibox_model_node_shape(b->am, node, &c, &h, &w);
    if (!act_shape(&m->t[y], &tc, &th, &tw) || tc != c || th != h || tw != w)
        return bad(f, "operator %d (%s): output tensor %d (%s) does not have the computed shape %dx%dx%d", opi, name, y,
                   m->t[y].name, h, w, c);
    b->node_of[y] = node;
    return AIBOX_OK;
}

/* TFLite's weight order (src, TFLite's tensor order) to the model's (dst):
 * conv OHWI -> OIHW, depthwise 1,KH,KW,OC -> OC,1,KH,KW, dense over an
 * h x w x c map -> units x (c, h, w). */
static void reorder(const tfl *m, const pending *p, int wi, size_t nw, const float *src, float *dst)
{
    const tfl_tensor *t = &m->t[wi];
    if (p->kind == 0) {
        int O = t->shape[0], KH = t->shape[1], KW = t->shape[2], I = t->shape[3];
        for (int oo = 0; oo < O; oo++)
            for (int kh = 0; kh < KH; kh++)
                for (int kw = 0; kw < KW; kw++)
                    for (int ii = 0; ii < I; ii++)
                        dst[(((size_t)oo * I + ii) * KH + kh) * KW + kw] = src[(((size_t)oo * KH + kh) * KW + kw) * I + ii];
    } else if (p->kind == 1) {
        int KH = t->shape[1], KW = t->shape[2], OC = t->shape[3];
        for (int oc = 0; oc < OC; oc++)
            for (int k = 0; k < KH * KW; k++) dst[(size_t)oc * KH * KW + k] = src[(size_t)k * OC + oc];
    } else {
        size_t hw_n = (size_t)p->in_h * p->in_w, in = (size_t)p->in_c * hw_n, units = nw / (in ? in : 1);
        for (size_t u = 0; u < units; u++)
            for (int c = 0; c < p->in_c; c++)
                for (size_t hw = 0; hw < hw_n; hw++) dst[u * in + (size_t)c * hw_n + hw] = src[u * in + hw * p->in_c + c];
    }
}

static aibox_status fill_weights(builder *b, const pending *p)
{
    tfl *m = b->m;
    const tfl_op *o = &m->ops[p->op];
    size_t nw, nb;
    float *w = aibox_model_node_param(b->am, p->node, 0, &nw);
    float *bias = aibox_model_node_param(b->am, p->node, 1, &nb);
    int wi = vec_i32(m, &o->in, 1), bi = vec_i32(m, &o->in, 2);
    char what[64];
    aibox_status s;
    snprintf(what, sizeof what, "operator %d", p->op);
    if (!w || !bias) return aibox_fail(b->err, AIBOX_E_STATE, "%s: %s: missing parameters", m->f.name, what);
    float *tmp = malloc(nw * sizeof *tmp);
    if (!tmp) return aibox_fail(b->err, AIBOX_E_NOMEM, "%s: out of memory", m->f.name);
    s = load_const(m, wi, tmp, nw, what);
    if (!s) reorder(m, p, wi, nw, tmp, w);
    free(tmp);
    if (s) return s;
    if (bi >= 0) return load_const(m, bi, bias, nb, what);
    memset(bias, 0, nb * sizeof *bias);
    return AIBOX_OK;
}

/* ------------------------------------------------------------ integer tables
 * A model whose every activation and weight is 8-bit keeps its integers
 * (lib/nn/qplan.h): imported so, it runs in integer arithmetic as TFLite's
 * own kernels do, bit for bit. */

/* Can tensor t's quantisation be a node's output domain (uint8 or int8, one scale)? */
static int act_domain(const tfl *m, const tfl_tensor *t, float *scale, int *zp)
{
    if (!is_quant(t) || t->scale.len != 1 || t->zp.len > 1) return 0;
    float sc = q_scale(m, t, 0);
    int64_t z = q_zp(m, t, 0) + (t->type == T_INT8 ? 128 : 0); /* int8 = its uint8 twin - 128 */
    if (!(sc > 0 && sc < 1e30f) || z < 0 || z > 255) return 0;
    *scale = sc, *zp = (int)z;
    return 1;
}

/* Node p->node's integer weights and bias from the file, in the model's
 * order; 0 when they are not 8-bit weights with an int32 bias on the scale
 * TFLite's kernels assume (then the import stays float). */
static int int_weights(builder *b, const pending *p, aibox_quant *q)
{
    tfl *m = b->m;
    const tfl_op *o = &m->ops[p->op];
    int wi = vec_i32(m, &o->in, 1), bi = vec_i32(m, &o->in, 2);
    const tfl_tensor *wt = &m->t[wi], *bt = bi >= 0 ? &m->t[bi] : NULL;
    size_t nw, nb, pos, len;
    if (!aibox_model_node_param(b->am, p->node, 0, &nw) || !aibox_model_node_param(b->am, p->node, 1, &nb)) return 0;
    if (!is_quant(wt) || (bt && (bt->type != T_INT32 || tensor_data(m, bi, &pos, &len) || len != nb * 4))) return 0;
    /* one weight zero point for the tensor (uint8 per tensor, or int8 symmetric) */
    int64_t z0 = q_zp(m, wt, 0);
    for (uint32_t c = 1; c < wt->zp.len; c++)
        if (q_zp(m, wt, c) != z0) return 0;
    if (wt->scale.len != 1 && wt->scale.len != nb) return 0;
    if (tensor_data(m, wi, &pos, &len) || len != nw) return 0;
    if (aibox_quant_alloc_weights(q, p->node, nw, (int)nb, NULL)) return 0;
    aibox_qweights *qw = &q->qw[p->node];
    float *raw = malloc(nw * sizeof *raw), *ord = malloc(nw * sizeof *ord);
    int ok = raw && ord;
    for (size_t i = 0; ok && i < nw; i++) /* as floats (exact): reorder is shared with the float path */
        raw[i] = wt->type == T_UINT8 ? (float)((int)m->f.b[pos + i] - 128) : (float)(int8_t)m->f.b[pos + i];
    if (ok) reorder(m, p, wi, nw, raw, ord);
    for (size_t i = 0; ok && i < nw; i++) qw->w[i] = (int8_t)ord[i];
    free(raw), free(ord);
    /* real weight = scale (w - z): uint8 stored as w - 128, so the offset is 128 - z; int8 -z */
    qw->wofs = (int32_t)(wt->type == T_UINT8 ? 128 - z0 : -z0);
    qw->float_product = wt->type == T_UINT8;
    for (size_t c = 0; ok && c < nb; c++) {
        qw->wscale[c] = q_scale(m, wt, (uint32_t)c);
        ok = qw->wscale[c] > 0 && isfinite(qw->wscale[c]);
    }
    if (ok && bt) {
        tensor_data(m, bi, &pos, &len);
        for (size_t c = 0; c < nb; c++) qw->bias[c] = (int32_t)u32_at(&m->f, pos + 4 * c);
    }
    if (!ok || qw->wofs < -255 || qw->wofs > 255) return 0;
    for (size_t c = 0; c < nb; c++)
        if (qw->bias[c] < -16777216 || qw->bias[c] > 16777216) return 0; /* what a model file stores exactly */
    return 1;
}

/* The integer tables of the built model, when every node has an 8-bit
 * domain and every weight is 8-bit. op_end[i]: the node count after
 * operator i, whose nodes (a convolution, its clamp) share its output
 * tensor's domain; a faithful import's input quantize node (made before the
 * first operator) has the input's. A model that falls short stays float (no
 * table), as before. */
static aibox_status quantise_import(builder *b, const int *op_end, int xi, const pending *pend, int n_pend)
{
    aibox_model *am = b->am;
    const tfl *m = b->m;
    int N = aibox_model_node_count(am), k = 1;
    aibox_quant *q = aibox_quant_create(N);
    if (!q) return aibox_fail(b->err, AIBOX_E_NOMEM, "%s: out of memory", m->f.name);
    int ok = act_domain(m, &m->t[xi], &q->scale[0], &q->zp[0]);
    for (uint32_t i = 0; ok && i < m->n_ops; i++) {
        int y = vec_i32(m, &m->ops[i].out, 0);
        for (; ok && k < op_end[i]; k++) ok = act_domain(m, &m->t[k == b->node_of[xi] ? xi : y], &q->scale[k], &q->zp[k]);
    }
    ok = ok && k == N;
    for (int j = 0; ok && j < n_pend; j++) ok = int_weights(b, &pend[j], q);
    if (!ok) {
        aibox_quant_free(&q);
        return AIBOX_OK;
    }
    aibox_model_set_quant(am, q);
    aibox_quant_dequantize(am); /* the floats are then exactly the integers' values */
    return AIBOX_OK;
}

/* The labels file's lines: the text up to its first NUL, split at '\n',
 * trailing CRs and spaces dropped, an empty last line ignored. With names
 * NULL only counts (nothing is written); else ends each line in place and
 * stores it. */
static int label_lines(char *text, const char **names)
{
    int n = 0;
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n'), *next = nl ? nl + 1 : line + strlen(line);
        size_t l = (size_t)((nl ? nl : next) - line);
        while (l && (line[l - 1] == '\r' || line[l - 1] == ' ')) l--;
        if (!l && !*next) break;
        if (names) line[l] = 0, names[n] = line;
        n++;
        line = next;
    }
    return n;
}

aibox_status aibox_import_set_labels(aibox_model *am, const char *path, aibox_error *err)
{
    int c, h, w;
    aibox_model_node_shape(am, aibox_model_output(am), &c, &h, &w);
    long long classes = (long long)c * h * w;
    uint8_t *buf;
    size_t len;
    aibox_status s = read_file(path, &buf, &len, err);
    if (s) return s;
    char *text = realloc(buf, len + 1);
    if (!text) {
        free(buf);
        return aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", path);
    }
    text[len] = 0;
    /* counted before anything is allocated per line: a file of newlines must
     * not cost 8 bytes of pointers per byte */
    int n = label_lines(text, NULL);
    const char **names = NULL;
    if (n != classes)
        s = aibox_fail(err, AIBOX_E_INVALID, "%s: %d labels for a model with %lld outputs", path, n, classes);
    else if (!(names = malloc((size_t)(n ? n : 1) * sizeof *names)))
        s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", path);
    else
        label_lines(text, names), s = aibox_model_set_meta_strs(am, AIBOX_META_CLASS_NAMES, n, names, err);
    free(names);
    free(text);
    return s;
}

aibox_status aibox_tflite_import_buffer(aibox_model **out, const void *buf, size_t len, const char *path,
                                        const aibox_import_opts *opts, aibox_error *err)
{
    if (!out || !path || (!buf && len))
        return aibox_fail(err, AIBOX_E_INVALID, "aibox_import_tflite: NULL argument");
    *out = NULL;
    aibox_error_clear(err);
    tfl m = {0};
    builder b = {0};
    pending *pend = NULL;
    int n_pend = 0, *op_end = NULL;
    aibox_status s;
    m.f.b = buf;
    m.f.n = len;
    m.f.name = path;
    m.f.err = err;
    if ((s = parse(&m))) goto done;
    fb *f = &m.f;
    if (m.sg_in.len != 1 || m.sg_out.len != 1) {
        s = aibox_fail(err, AIBOX_E_UNSUPPORTED, "%s: %u inputs and %u outputs; libaibox imports one of each", path,
                       m.sg_in.len, m.sg_out.len);
        goto done;
    }
    int xi = vec_i32(&m, &m.sg_in, 0), yi = vec_i32(&m, &m.sg_out, 0);
    tfl_tensor *xt = &m.t[xi];
    int C, H, W;
    if (xt->ndim != 4 || xt->shape[0] != 1 || !act_shape(xt, &C, &H, &W) || C < 1 || C > 4 || H < 1 || W < 1) {
        s = aibox_fail(err, AIBOX_E_UNSUPPORTED, "%s: the input is not a 1xHxWxC image with 1 to 4 channels", path);
        goto done;
    }
    if (!(xt->type == T_FLOAT32 || (is_quant(xt) && xt->scale.len == 1))) {
        s = aibox_fail(err, AIBOX_E_UNSUPPORTED, "%s: input tensor type %d is not float32 or quantised 8-bit", path,
                       xt->type);
        goto done;
    }
    b.m = &m;
    b.o = opts;
    b.err = err;
    b.node_of = malloc((m.n_t ? m.n_t : 1) * sizeof *b.node_of);
    pend = malloc((m.n_ops ? m.n_ops : 1) * sizeof *pend);
    op_end = malloc((m.n_ops ? m.n_ops : 1) * sizeof *op_end);
    if (!b.node_of || !pend || !op_end) {
        s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", path);
        goto done;
    }
    for (uint32_t i = 0; i < m.n_t; i++) b.node_of[i] = -1;
    if ((s = aibox_model_create(&b.am, C, H, W, err))) goto done;
    b.node_of[xi] = 0;
    if (opts && opts->faithful && is_quant(xt)) { /* TFLite's input is an 8-bit image */
        int qmin = xt->type == T_UINT8 ? 0 : -128, qmax = xt->type == T_UINT8 ? 255 : 127;
        b.node_of[xi] = aibox_quantize(b.am, 0, q_scale(&m, xt, 0), (float)q_zp(&m, xt, 0), (float)qmin, (float)qmax);
        if (b.node_of[xi] < 0) {
            s = aibox_fail(err, -b.node_of[xi], "%s: %s", path, aibox_model_last_error(b.am));
            goto done;
        }
    }
    for (uint32_t i = 0; i < m.n_ops; i++) {
        if ((s = build_op(&b, (int)i, pend, &n_pend))) goto done;
        op_end[i] = aibox_model_node_count(b.am);
    }
    if (b.node_of[yi] < 0) {
        s = bad(f, "no operator computes the output tensor %d (%s)", yi, m.t[yi].name);
        goto done;
    }
    if ((s = aibox_model_set_output(b.am, b.node_of[yi])) != AIBOX_OK) {
        s = aibox_fail(err, s, "%s: cannot set the output node", path);
        goto done;
    }
    /* metadata and labels before the parameters exist: a refusal here costs no network */
    aibox_preproc pp;
    aibox_preproc_default(&pp, b.am);
    pp.resize = AIBOX_RESIZE_BILINEAR;
    for (int c = 0; c < 4; c++) {
        if (is_quant(xt)) {
            double sc = q_scale(&m, xt, 0), zp = (double)q_zp(&m, xt, 0);
            if (xt->type == T_INT8) zp += 128; /* int8 input = uint8 pixel - 128 */
            pp.mean[c] = (float)(zp / 255.0);
            pp.std[c] = (float)(1.0 / (255.0 * sc));
        } else {
            pp.mean[c] = 0.5f; /* MobileNet float models expect [-1, 1] */
            pp.std[c] = 0.5f;
        }
        if (!isfinite(pp.mean[c]) || !isfinite(pp.std[c])) {
            s = bad(f, "input quantisation (scale %g, zero point %lld) gives no usable normalisation",
                    q_scale(&m, xt, 0), (long long)q_zp(&m, xt, 0));
            goto done;
        }
    }
    if ((s = aibox_preproc_to_model(&pp, b.am, err))) goto done;
    const char *leaf = strrchr(path, '/');
    leaf = leaf ? leaf + 1 : path;
    char arch[300];
    snprintf(arch, sizeof arch, "tflite:%s", leaf);
    if ((s = aibox_model_set_meta_str(b.am, AIBOX_META_ARCH, arch, err))) goto done;
    if ((s = aibox_model_set_meta_str(b.am, AIBOX_META_TASK, "classify", err))) goto done;
    if (opts && opts->labels_path && (s = aibox_import_set_labels(b.am, opts->labels_path, err))) goto done;
    /* only allocation can fail from here: every constant was checked while the graph was built */
    if ((s = aibox_model_finish(b.am, 1, err))) goto done;
    for (int i = 0; i < n_pend; i++)
        if ((s = fill_weights(&b, &pend[i]))) goto done;
    if (!(opts && opts->float_only) && (s = quantise_import(&b, op_end, xi, pend, n_pend))) goto done;
    *out = b.am;
    b.am = NULL;
done:
    if (b.am) aibox_model_free(&b.am);
    free(b.node_of);
    free(pend);
    free(op_end);
    free(m.codes);
    free(m.t);
    free(m.ops);
    return s;
}

aibox_status aibox_import_tflite(aibox_model **out, const char *path, const aibox_import_opts *opts, aibox_error *err)
{
    if (!out || !path) return aibox_fail(err, AIBOX_E_INVALID, "aibox_import_tflite: NULL argument");
    *out = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    aibox_status s = read_file(path, &buf, &len, err);
    if (s) return s;
    s = aibox_tflite_import_buffer(out, buf, len, path, opts, err);
    free(buf);
    return s;
}
