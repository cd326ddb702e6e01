/* Hostile and broken model files: a file whose CRC an attacker recomputed
 * after editing the graph (sizes that overflow, claims far beyond the bytes
 * present, missing tensors), non-finite weights, and the metadata-only
 * loader. Every refusal must cost no more than 64 MB plus the file's own size
 * (measured in a child process), and a loaded model holds no gradients until
 * training asks for them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/check.h"
#include "io/aibox_file.h"
#include "io/model_io.h"
#include "nn/nn.h"

static char g_dir[256];

static void path_in(char *out, size_t cap, const char *leaf) { snprintf(out, cap, "%s/%s", g_dir, leaf); }

static long file_kb(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (long)(st.st_size / 1024);
}

/* ------------------------------------------------------------------ crafting */
/* input 1x8x8 -> conv 4 (3x3, pad 1) -> relu -> flatten -> dense 2 */
static void save_small(const char *path)
{
    aibox_model *m = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_model_create(&m, 1, 8, 8, &e), AIBOX_OK);
    int x = aibox_conv2d_simple(m, 0, 4, 3, 1, 1);
    x = aibox_relu(m, x);
    x = aibox_flatten(m, x);
    aibox_dense(m, x, 2, 1);
    assert_int_equal(aibox_model_finish(m, 1, &e), AIBOX_OK);
    assert_int_equal(aibox_model_save(m, path, &e), AIBOX_OK);
    aibox_model_free(&m);
}

/* Writes f's tensors under the metadata meta to path (a valid CRC); frees both. */
static void rewrite(const char *path, aibox_file **f, aibox_meta_list *meta)
{
    aibox_error e = {0};
    aibox_file_tensor t[16];
    assert_true((*f)->n_tensors <= 16);
    for (int i = 0; i < (*f)->n_tensors; i++) {
        const aibox_file_entry *x = &(*f)->tensors[i];
        t[i].name = x->name, t[i].ndim = x->ndim, t[i].data = x->data, t[i].dtype = x->dtype;
        memcpy(t[i].dims, x->dims, sizeof t[i].dims);
    }
    assert_int_equal(aibox_file_write(path, meta, (*f)->n_tensors, t, &e), AIBOX_OK);
    aibox_meta_list_free(meta);
    aibox_file_free(f);
}

/* The same model as a graph version 1 file (what libaibox wrote before the
 * named settings): the one positional array, header then per node kind
 * frozen n_in in[n_in], 12 int slots and 4 float slots (bits), each setting
 * in the slot its field's v1_slot names. */
static void save_small_v1(const char *path)
{
    aibox_model *m = NULL;
    aibox_error e = {0};
    save_small(path);
    assert_int_equal(aibox_model_load(&m, path, &e), AIBOX_OK);
    int64_t g[6 + 32 * (3 + AIBOX_NODE_MAX_IN + AIBOX_V1_INT_SLOTS + AIBOX_V1_FLOAT_SLOTS)];
    size_t k = 0;
    g[k++] = 1, g[k++] = m->in_c, g[k++] = m->in_h, g[k++] = m->in_w, g[k++] = aibox_model_output(m);
    g[k++] = m->n_nodes;
    assert_true(m->n_nodes <= 32);
    for (int i = 0; i < m->n_nodes; i++) {
        aibox_node *nd = &m->nodes[i];
        const aibox_layer_ops *ops = aibox_layer_get(nd->kind);
        g[k++] = nd->kind, g[k++] = nd->frozen, g[k++] = nd->n_in;
        for (int j = 0; j < nd->n_in; j++) g[k++] = nd->in[j];
        int64_t *ip = &g[k], *fp = ip + AIBOX_V1_INT_SLOTS;
        memset(ip, 0, sizeof(int64_t) * (AIBOX_V1_INT_SLOTS + AIBOX_V1_FLOAT_SLOTS));
        for (int f = 0; f < ops->n_fields; f++) {
            const aibox_setting_field *fd = &ops->fields[f];
            if (fd->type == AIBOX_SETTING_INT) {
                ip[fd->v1_slot] = *aibox_setting_int(&nd->settings, fd);
            } else {
                uint32_t u;
                memcpy(&u, aibox_setting_float(&nd->settings, fd), 4);
                fp[fd->v1_slot] = u;
            }
        }
        k += AIBOX_V1_INT_SLOTS + AIBOX_V1_FLOAT_SLOTS;
    }
    aibox_model_free(&m);
    aibox_file *f = NULL;
    assert_int_equal(aibox_file_read(path, &f, &e), AIBOX_OK);
    aibox_meta_list meta = {0};
    assert_int_equal(aibox_meta_set_str(&meta, "aibox.library_version", "0.1.0", &e), AIBOX_OK);
    assert_int_equal(aibox_meta_set_ints(&meta, "aibox.graph", (int)k, g, &e), AIBOX_OK);
    rewrite(path, &f, &meta);
}

/* Index in a version 1 graph array of a node's value: 0 kind, 1 frozen,
 * 2 n_in, 3 + j its input j, then the int slots and the float slots. */
static size_t v1_slot(const aibox_meta *g, int node, int field)
{
    size_t k = 6;
    for (int i = 0; i < node; i++) k += 3 + (size_t)g->ints[k + 2] + AIBOX_V1_INT_SLOTS + AIBOX_V1_FLOAT_SLOTS;
    return k + (size_t)field;
}

typedef struct edit {
    int node;            /* -1: graph header value header[field]; >= 1: the node's setting; -2: none */
    int field;           /* header index */
    const char *setting; /* node's int setting, by name */
    int64_t value;
    const char *drop;   /* a tensor to leave out, or NULL */
    const char *poison; /* a tensor whose first value becomes +Inf, or NULL */
} edit;

static aibox_meta *meta_entry(aibox_file *f, const char *key)
{
    for (int i = 0; i < f->meta.count; i++)
        if (!strcmp(f->meta.items[i].key, key)) return &f->meta.items[i];
    return NULL;
}

/* Rewrites src into dst with the edits applied and a valid CRC (what an
 * attacker who recomputes the checksum produces), in src's graph version:
 * version 2 edits the setting's own key, version 1 its positional slot. */
static void craft(const char *src, const char *dst, const edit *ed, int n_ed)
{
    aibox_file *f = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_file_read(src, &f, &e), AIBOX_OK);
    aibox_meta *g = meta_entry(f, "aibox.graph");
    assert_non_null(g);
    aibox_file_tensor *t = calloc((size_t)f->n_tensors + 1, sizeof *t);
    assert_non_null(t);
    int nt = 0;
    for (int k = 0; k < n_ed; k++) {
        if (ed[k].node < -1) continue;
        if (ed[k].node == -1) {
            assert_true(ed[k].field < g->n);
            g->ints[ed[k].field] = ed[k].value;
        } else if (g->ints[0] == 1) {
            aibox_layer_kind kind = (aibox_layer_kind)g->ints[v1_slot(g, ed[k].node, 0)];
            const aibox_layer_ops *ops = aibox_layer_get(kind);
            int f_ = 0;
            while (f_ < ops->n_fields && strcmp(ops->fields[f_].name, ed[k].setting)) f_++;
            assert_true(f_ < ops->n_fields);
            size_t at = v1_slot(g, ed[k].node, 3 + (int)g->ints[v1_slot(g, ed[k].node, 2)] + ops->fields[f_].v1_slot);
            assert_true(at < (size_t)g->n);
            g->ints[at] = ed[k].value;
        } else {
            char key[128];
            snprintf(key, sizeof key, "aibox.node.%d.%s", ed[k].node, ed[k].setting);
            aibox_meta *x = meta_entry(f, key);
            assert_non_null(x);
            assert_int_equal(x->type, AIBOX_META_INT);
            x->i = ed[k].value;
        }
    }
    for (int i = 0; i < f->n_tensors; i++) {
        int drop = 0;
        for (int k = 0; k < n_ed; k++) {
            if (ed[k].drop && !strcmp(ed[k].drop, f->tensors[i].name)) drop = 1;
            if (ed[k].poison && !strcmp(ed[k].poison, f->tensors[i].name)) f->tensors[i].data[0] = INFINITY;
        }
        if (drop) continue;
        t[nt].name = f->tensors[i].name;
        t[nt].ndim = f->tensors[i].ndim;
        memcpy(t[nt].dims, f->tensors[i].dims, sizeof t[nt].dims);
        t[nt].data = f->tensors[i].data;
        t[nt].dtype = f->tensors[i].dtype;
        nt++;
    }
    assert_int_equal(aibox_file_write(dst, &f->meta, nt, t, &e), AIBOX_OK);
    free(t);
    aibox_file_free(&f);
}

/* ------------------------------------------------------------------ measuring a refusal */
typedef struct load_job {
    const char *path;
    int info; /* aibox_model_load_info instead of aibox_model_load */
} load_job;

static int load_child(void *arg)
{
    const load_job *j = arg;
    aibox_model *m = NULL;
    aibox_error e = {0};
    aibox_status s = j->info ? aibox_model_load_info(&m, j->path, &e) : aibox_model_load(&m, j->path, &e);
    aibox_model_free(&m);
    return (int)s;
}

/* Loads path in a child: the status and the peak-RSS rise in kB (-1: unmeasurable). */
static long measured_load(const char *path, int info, aibox_status *st)
{
    load_job j = {path, info};
    int rc = 0;
    long kb = aibox_test_peak_kb(load_child, &j, &rc);
    *st = (aibox_status)rc;
    return kb;
}

typedef struct hostile {
    const char *name, *why;
    edit ed[3];
    int n_ed;
    aibox_status want;
    const char *msg; /* expected in the refusal */
} hostile;

/* Each crafted file is refused with a message naming the problem, and the
 * refusal's peak RSS stays under 64 MB plus the file's size, in both graph
 * versions (the named settings of version 2; the positional slots of the
 * version 1 files older libraries wrote). Before the loader checked the
 * stored tensors first, "dense 4M units" allocated and zeroed 8 GB
 * (parameters and gradients) for a 2 KB file. */
static void crafted_graphs_refused_cheaply(int version)
{
    char base[512], bad[512];
    path_in(base, sizeof base, "base.aibox");
    if (version == 1) save_small_v1(base);
    else save_small(base);
    print_message("# graph version %d\n", version);
    const hostile cases[] = {
        /* node 4 is the dense layer */
        {"dense 4M units", "claims 2^30 weights, stores 512", {{4, 0, "units", 1 << 22, NULL, NULL}}, 1, AIBOX_E_FORMAT,
         "needs 1073741824"},
        {"dense 2^24 units", "2^32 weights", {{4, 0, "units", 1 << 24, NULL, NULL}}, 1, AIBOX_E_FORMAT, "graph node 4"},
        {"dense 2^30 units", "beyond the unit limit", {{4, 0, "units", 1 << 30, NULL, NULL}}, 1, AIBOX_E_FORMAT, "units"},
        /* node 1 is the conv */
        {"conv 2^24 channels", "output 2^30 per sample, weights 151M", {{1, 0, "out_channels", 1 << 24, NULL, NULL}}, 1,
         AIBOX_E_FORMAT, "graph node"},
        {"conv int-max kernel", "weights overflow 64 bits",
         {{1, 0, "out_channels", INT32_MAX, NULL, NULL},
          {1, 0, "kernel_h", INT32_MAX, NULL, NULL},
          {1, 0, "kernel_w", INT32_MAX, NULL, NULL}},
         3, AIBOX_E_FORMAT, "graph node 1"},
        {"conv huge padding", "output side beyond the limit",
         {{1, 0, "pad_top", INT32_MAX, NULL, NULL}, {1, 0, "pad_bottom", INT32_MAX, NULL, NULL}}, 2, AIBOX_E_FORMAT,
         "padding"},
        {"input 65536x65536", "input beyond 2^31 values",
         {{-1, 2, NULL, 65536, NULL, NULL}, {-1, 3, NULL, 65536, NULL, NULL}}, 2, AIBOX_E_FORMAT, "input"},
        {"input 32768x32768", "flatten of 2^32 values",
         {{-1, 2, NULL, 32768, NULL, NULL}, {-1, 3, NULL, 32768, NULL, NULL}}, 2, AIBOX_E_FORMAT, "graph node 1"},
        {"node count 2^20", "claims a million nodes", {{-1, 5, NULL, 1 << 20, NULL, NULL}}, 1, AIBOX_E_FORMAT,
         "malformed"},
        {"missing bias", "a tensor left out", {{-2, 0, NULL, 0, "n1.p1", NULL}}, 1, AIBOX_E_FORMAT, "missing"},
        {"infinite weight", "a weight set to +Inf", {{-2, 0, NULL, 0, NULL, "n4.p0"}}, 1, AIBOX_E_FORMAT, "non-finite"},
        {"conv bias 7", "a flag beyond 0/1", {{1, 0, "bias", 7, NULL, NULL}}, 1, AIBOX_E_FORMAT, "bias must be 0 or 1"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const hostile *h = &cases[c];
        path_in(bad, sizeof bad, "bad.aibox");
        craft(base, bad, h->ed, h->n_ed);
        aibox_model *m = NULL;
        aibox_error e = {0};
        aibox_status s = aibox_model_load(&m, bad, &e);
        print_message("# %-20s (%s): %s\n", h->name, h->why, e.msg);
        assert_int_equal(s, h->want);
        assert_null(m);
        assert_non_null(strstr(e.msg, bad));
        assert_non_null(strstr(e.msg, h->msg));
        /* the metadata-only loader refuses the same graphs (not the Inf: it reads no weights) */
        s = aibox_model_load_info(&m, bad, &e);
        if (h->ed[0].poison) {
            assert_int_equal(s, AIBOX_OK);
            aibox_model_free(&m);
        } else {
            assert_int_equal(s, h->want);
        }
        aibox_status cs;
        long kb = measured_load(bad, 0, &cs);
        assert_int_equal(cs, h->want);
        if (kb >= 0) {
            print_message("#   refusal peak RSS +%ld kB (file %ld kB)\n", kb, file_kb(bad));
            assert_true(kb < 64 * 1024 + file_kb(bad));
        }
    }
}

static void test_crafted_graphs_refused_cheaply(void **state)
{
    (void)state;
    crafted_graphs_refused_cheaply(2);
    crafted_graphs_refused_cheaply(1);
}

/* ------------------------------------------------------------------ named settings (graph version 2) */
/* A key edit: the entry key gets the value (replacing it, or appended), or
 * is dropped. */
typedef struct key_edit {
    const char *key;
    aibox_meta_type type; /* 0: drop the key */
    int64_t i;
    double f;
    const char *s;
    int n;
    int64_t ints[8];
} key_edit;

static aibox_status set_entry(aibox_meta_list *l, const aibox_meta *x, aibox_error *e)
{
    switch (x->type) {
    case AIBOX_META_INT: return aibox_meta_set_int(l, x->key, x->i, e);
    case AIBOX_META_FLOAT: return aibox_meta_set_float(l, x->key, x->f, e);
    case AIBOX_META_STR: return aibox_meta_set_str(l, x->key, x->s, e);
    case AIBOX_META_INTS: return aibox_meta_set_ints(l, x->key, x->n, x->ints, e);
    case AIBOX_META_FLOATS: return aibox_meta_set_floats(l, x->key, x->n, x->floats, e);
    case AIBOX_META_STRS: return aibox_meta_set_strs(l, x->key, x->n, (const char *const *)x->strs, e);
    }
    return AIBOX_E_INVALID;
}

/* src rewritten into dst with one key edited (and a valid CRC). */
static void craft_key(const char *src, const char *dst, const key_edit *ke)
{
    aibox_file *f = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_file_read(src, &f, &e), AIBOX_OK);
    aibox_meta x = {.key = (char *)ke->key, .type = ke->type, .n = ke->n, .i = ke->i, .f = ke->f,
                    .s = (char *)ke->s, .ints = (int64_t *)ke->ints};
    aibox_meta_list meta = {0};
    int found = 0;
    for (int i = 0; i < f->meta.count; i++) {
        const aibox_meta *old = &f->meta.items[i];
        if (strcmp(old->key, ke->key)) {
            assert_int_equal(set_entry(&meta, old, &e), AIBOX_OK);
        } else {
            found = 1;
            if (ke->type) assert_int_equal(set_entry(&meta, &x, &e), AIBOX_OK); /* in place */
        }
    }
    if (!found && ke->type) assert_int_equal(set_entry(&meta, &x, &e), AIBOX_OK);
    rewrite(dst, &f, &meta);
}

/* input 2x6x6 -> conv 4 -> batchnorm -> leaky_relu -> flatten -> dense 3 */
static void save_named(const char *path)
{
    aibox_model *m = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_model_create(&m, 2, 6, 6, &e), AIBOX_OK);
    int x = aibox_batchnorm(m, aibox_conv2d_simple(m, 0, 4, 3, 1, 1), 1e-3f, 0.1f);
    x = aibox_flatten(m, aibox_leaky_relu(m, x, 0.2f));
    aibox_dense(m, x, 3, 1);
    assert_int_equal(aibox_model_finish(m, 1, &e), AIBOX_OK);
    assert_int_equal(aibox_model_save(m, path, &e), AIBOX_OK);
    aibox_model_free(&m);
}

/* Every way a version 2 graph can be wrong is refused with a message that
 * names the node, the key or the setting: unknown and missing settings,
 * wrong types, values beyond their type, unknown kinds, bad inputs, keys
 * of no node, a newer graph version. */
static void test_named_graph_refusals(void **state)
{
    (void)state;
    char base[512], bad[512];
    path_in(base, sizeof base, "named.aibox");
    path_in(bad, sizeof bad, "named-bad.aibox");
    save_named(base);
    aibox_model *m = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_model_load(&m, base, &e), AIBOX_OK);
    for (int i = 0; i < aibox_model_meta_count(m); i++) /* the graph's keys are not user metadata */
        assert_null(strstr(aibox_model_meta_key(m, i), "aibox.node."));
    aibox_model_free(&m);
    const struct {
        key_edit ke;
        aibox_status want;
        const char *msg;
    } cases[] = {
        {{"aibox.node.5.unitz", AIBOX_META_INT, .i = 3}, AIBOX_E_FORMAT, "node 5 (dense) has an unknown setting \"unitz\""},
        {{.key = "aibox.node.1.groups"}, AIBOX_E_FORMAT, "node 1 (conv2d): setting groups is missing"},
        {{"aibox.node.5.units", AIBOX_META_FLOAT, .f = 3.0}, AIBOX_E_FORMAT, "units must be an int"},
        {{"aibox.node.5.units", AIBOX_META_INT, .i = 1LL << 32}, AIBOX_E_FORMAT, "units must be an int (32 bits)"},
        {{"aibox.node.3.alpha", AIBOX_META_INT, .i = 1}, AIBOX_E_FORMAT, "alpha must be a float"},
        {{"aibox.node.3.alpha", AIBOX_META_FLOAT, .f = 1e300}, AIBOX_E_FORMAT, "alpha must be a float (32 bits)"},
        {{"aibox.node.3.alpha", AIBOX_META_FLOAT, .f = NAN}, AIBOX_E_FORMAT, "alpha must be finite"},
        {{"aibox.node.2.eps", AIBOX_META_FLOAT, .f = -1.0}, AIBOX_E_FORMAT, "epsilon"},
        {{"aibox.node.2.momentum", AIBOX_META_FLOAT, .f = INFINITY}, AIBOX_E_FORMAT, "momentum"},
        {{"aibox.node.2.kind", AIBOX_META_STR, .s = "swish"}, AIBOX_E_UNSUPPORTED, "unknown layer kind \"swish\""},
        {{"aibox.node.2.kind", AIBOX_META_STR, .s = "input"}, AIBOX_E_FORMAT, "node 2 is an input; only node 0 is"},
        {{"aibox.node.2.kind", AIBOX_META_INT, .i = 12}, AIBOX_E_FORMAT, "node 2 is malformed: no aibox.node.2.kind"},
        {{.key = "aibox.node.2.kind"}, AIBOX_E_FORMAT, "node 2 is malformed"},
        {{"aibox.node.5.kind", AIBOX_META_STR, .s = "relu"}, AIBOX_E_FORMAT, "node 5 (relu) has an unknown setting"},
        {{"aibox.node.3.kind", AIBOX_META_STR, .s = "dense"}, AIBOX_E_FORMAT, "(dense) has an unknown setting \"alpha\""},
        {{"aibox.node.4.kind", AIBOX_META_STR, .s = "dense"}, AIBOX_E_FORMAT, "(dense): setting units is missing"},
        {{"aibox.node.2.in", AIBOX_META_INTS, .n = 1, .ints = {3}}, AIBOX_E_FORMAT, "input 3 is not an earlier node"},
        {{"aibox.node.2.in", AIBOX_META_INTS, .n = 1, .ints = {-1}}, AIBOX_E_FORMAT, "input -1 is not an earlier node"},
        {{"aibox.node.2.in", AIBOX_META_INTS, .n = 2, .ints = {0, 1}}, AIBOX_E_FORMAT, "node 2: batchnorm: 2 inputs"},
        {{"aibox.node.2.in", AIBOX_META_INT, .i = 1}, AIBOX_E_FORMAT, "no aibox.node.2.in array"},
        {{.key = "aibox.node.2.in"}, AIBOX_E_FORMAT, "no aibox.node.2.in array"},
        {{"aibox.node.2.frozen", AIBOX_META_INT, .i = 2}, AIBOX_E_FORMAT, "frozen of 0 or 1"},
        {{"aibox.node.6.kind", AIBOX_META_STR, .s = "relu"}, AIBOX_E_FORMAT, "graph key aibox.node.6.kind names no node"},
        {{"aibox.node.0.kind", AIBOX_META_STR, .s = "relu"}, AIBOX_E_FORMAT, "names no node"},
        {{"aibox.node.01.kind", AIBOX_META_STR, .s = "relu"}, AIBOX_E_FORMAT, "names no node"},
        {{"aibox.node.1", AIBOX_META_INT, .i = 0}, AIBOX_E_FORMAT, "names no node"},
        {{"aibox.node.1.", AIBOX_META_INT, .i = 0}, AIBOX_E_FORMAT, "names no node"},
        {{"aibox.graph", AIBOX_META_INTS, .n = 1, .ints = {3}}, AIBOX_E_UNSUPPORTED, "written by a newer libaibox"},
        {{"aibox.graph", AIBOX_META_INTS, .n = 1, .ints = {0}}, AIBOX_E_FORMAT, "graph version 0 is invalid"},
        {{"aibox.graph", AIBOX_META_INTS, .n = 2, .ints = {2, 2}}, AIBOX_E_FORMAT, "graph header out of range"},
        {{"aibox.graph", AIBOX_META_INTS, .n = 7, .ints = {2, 2, 6, 6, 5, 6, 0}}, AIBOX_E_FORMAT,
         "graph header has 7 values, version 2 has 6"},
        {{"aibox.graph", AIBOX_META_STR, .s = "2"}, AIBOX_E_FORMAT, "without a model graph"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        craft_key(base, bad, &cases[c].ke);
        memset(&e, 0, sizeof e);
        aibox_status s = aibox_model_load(&m, bad, &e);
        print_message("# %s: %s\n", cases[c].ke.key, e.msg);
        assert_int_equal(s, cases[c].want);
        assert_null(m);
        assert_non_null(strstr(e.msg, bad));
        assert_non_null(strstr(e.msg, cases[c].msg));
        assert_int_equal(aibox_model_load_info(&m, bad, &e), cases[c].want);
    }
    /* the graph's keys cannot be set as user metadata (they would shadow the graph) */
    assert_int_equal(aibox_model_load(&m, base, &e), AIBOX_OK);
    assert_int_equal(aibox_model_set_meta_int(m, "aibox.node.1.extra", 1, &e), AIBOX_OK);
    assert_int_equal(aibox_model_save(m, bad, &e), AIBOX_E_INVALID);
    assert_non_null(strstr(e.msg, "reserved"));
    aibox_model_free(&m);
}

/* A model loaded for inference has no gradient block; training allocates it
 * on first need, zeroed. */
static void test_loaded_model_has_no_gradients(void **state)
{
    (void)state;
    char p[512];
    path_in(p, sizeof p, "grads.aibox");
    save_small(p);
    aibox_model *m = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_model_load(&m, p, &e), AIBOX_OK);
    assert_null(m->grads);
    aibox_ctx *ctx = NULL;
    assert_int_equal(aibox_ctx_create(&ctx, m, &(aibox_ctx_opts){.height = 8, .width = 8}, &e), AIBOX_OK);
    float x[64] = {0};
    assert_int_equal(aibox_ctx_infer(ctx, m, x, 1, &e), AIBOX_OK);
    aibox_ctx_free(&ctx);
    assert_null(m->grads); /* inference never made one */
    float *g = aibox_model_grads(m);
    assert_non_null(g);
    for (size_t i = 0; i < aibox_model_param_count(m); i++) assert_true(g[i] == 0.0f);
    aibox_model_free(&m);
}

/* The metadata-only loader: same graph, counts and metadata as a full load,
 * memory independent of the weights' size, and everything that needs weights
 * refused. A 16 MB model's --info used to read all 16 MB. */
static void test_info_reads_no_weights(void **state)
{
    (void)state;
    char p[512];
    path_in(p, sizeof p, "big.aibox");
    aibox_model *m = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_model_create(&m, 1, 64, 64, &e), AIBOX_OK);
    int x = aibox_flatten(m, 0);
    aibox_dense(m, x, 1024, 1); /* 4M weights: a 16 MB file */
    assert_int_equal(aibox_model_finish(m, 3, &e), AIBOX_OK);
    assert_int_equal(aibox_model_set_meta_str(m, "aibox.note", "hello", &e), AIBOX_OK);
    assert_int_equal(aibox_model_save(m, p, &e), AIBOX_OK);
    aibox_model_free(&m);

    aibox_model *full = NULL, *info = NULL;
    assert_int_equal(aibox_model_load(&full, p, &e), AIBOX_OK);
    assert_int_equal(aibox_model_load_info(&info, p, &e), AIBOX_OK);
    assert_int_equal(aibox_model_node_count(info), aibox_model_node_count(full));
    assert_int_equal(aibox_model_param_count(info), aibox_model_param_count(full));
    const char *v = NULL;
    assert_int_equal(aibox_model_get_meta_str(info, "aibox.note", &v), AIBOX_OK);
    assert_string_equal(v, "hello");
    assert_null(aibox_model_node_param(info, 2, 0, NULL));
    aibox_ctx *ctx = NULL;
    assert_int_equal(aibox_ctx_create(&ctx, info, &(aibox_ctx_opts){.height = 64, .width = 64}, &e), AIBOX_E_STATE);
    assert_non_null(strstr(e.msg, "without its weights"));
    char q[512];
    path_in(q, sizeof q, "resaved.aibox");
    assert_int_equal(aibox_model_save(info, q, &e), AIBOX_E_STATE);
    assert_int_equal(aibox_relu(info, 1) < 0, 1);
    aibox_model_free(&full);
    aibox_model_free(&info);

    aibox_status s;
    long kb_info = measured_load(p, 1, &s), kb_full = measured_load(p, 0, &s);
    if (kb_info >= 0) {
        print_message("# 16 MB model: peak RSS +%ld kB metadata only, +%ld kB full load\n", kb_info, kb_full);
        assert_true(kb_info < 4 * 1024);
        assert_true(kb_full > 16 * 1024);
    }
    /* a damaged copy is still refused by the metadata-only path */
    FILE *f = fopen(p, "r+b");
    assert_non_null(f);
    fseek(f, 100000, SEEK_SET);
    fputc(0x5a, f);
    fclose(f);
    assert_int_equal(aibox_model_load_info(&info, p, &e), AIBOX_E_CORRUPT);
    assert_non_null(strstr(e.msg, "checksum"));
}

/* Saving refuses non-finite parameters, so a diverged model never replaces
 * a good file. */
static void test_save_refuses_nonfinite(void **state)
{
    (void)state;
    char p[512];
    path_in(p, sizeof p, "nan.aibox");
    save_small(p);
    aibox_model *m = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_model_load(&m, p, &e), AIBOX_OK);
    size_t n = 0;
    float *w = aibox_model_node_param(m, 4, 0, &n);
    assert_non_null(w);
    w[n - 1] = NAN;
    assert_int_equal(aibox_model_save(m, p, &e), AIBOX_E_INVALID);
    assert_non_null(strstr(e.msg, "non-finite"));
    aibox_model_free(&m);
    assert_int_equal(aibox_model_load(&m, p, &e), AIBOX_OK); /* the old file is intact */
    aibox_model_free(&m);
}

/* An inference context larger than the machine's memory is refused before
 * anything is allocated (a valid 1x1x1 model upsampled to 8 GB per node). */
static void test_context_beyond_memory_refused(void **state)
{
    (void)state;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0) skip();
    double phys = (double)pages * (double)page;
    aibox_model *m = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_model_create(&m, 1, 1, 1, &e), AIBOX_OK);
    int x = aibox_upsample_nearest(m, 0, 32767, 65536); /* 2^31 - 2^16 values: 8 GB */
    int layers = (int)(phys / 8e9) + 2;
    for (int i = 0; i < layers; i++) x = aibox_sigmoid(m, x);
    assert_int_equal(aibox_model_finish(m, 1, &e), AIBOX_OK);
    aibox_ctx *ctx = NULL;
    assert_int_equal(aibox_ctx_create(&ctx, m, &(aibox_ctx_opts){.height = 1, .width = 1}, &e), AIBOX_E_NOMEM);
    print_message("# %s\n", e.msg);
    assert_non_null(strstr(e.msg, "more than this machine"));
    assert_int_equal(aibox_upsample_nearest(m, 0, 65536, 65536) < 0, 1); /* 2^32 values per sample */
    aibox_model_free(&m);
}

static int setup(void **state)
{
    (void)state;
    return aibox_test_mkdtemp(g_dir, sizeof g_dir, "hostile");
}

static int teardown(void **state)
{
    (void)state;
    return aibox_test_rm_rf(g_dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crafted_graphs_refused_cheaply),
        cmocka_unit_test(test_named_graph_refusals),
        cmocka_unit_test(test_loaded_model_has_no_gradients),
        cmocka_unit_test(test_info_reads_no_weights),
        cmocka_unit_test(test_save_refuses_nonfinite),
        cmocka_unit_test(test_context_beyond_memory_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
