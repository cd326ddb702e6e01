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

/* Index in the graph array of a node's field: 0 kind, 1 frozen, 2 n_in,
 * 3 + j its input j, "ip" slot j at 3 + n_in + j, "fp" slot j after those.
 * Node -1 is the header (version, c, h, w, output, node count). */
static size_t slot(const aibox_meta *g, int node, int field)
{
    if (node < 0) return (size_t)field;
    size_t k = 6;
    for (int i = 0; i < node; i++) k += 3 + (size_t)g->ints[k + 2] + AIBOX_NODE_NI + AIBOX_NODE_NF;
    return k + (size_t)field;
}
static size_t ip_slot(const aibox_meta *g, int node, int j) { return slot(g, node, 3 + (int)g->ints[slot(g, node, 2)] + j); }

typedef struct edit {
    int node, field;  /* graph value: slot(node, field) = value; node -2: none */
    int64_t value;
    int ip;           /* field is an "ip" slot index */
    const char *drop; /* a tensor to leave out, or NULL */
    const char *poison; /* a tensor whose first value becomes +Inf, or NULL */
} edit;

/* Rewrites src into dst with the edits applied and a valid CRC (what an
 * attacker who recomputes the checksum produces). */
static void craft(const char *src, const char *dst, const edit *ed, int n_ed)
{
    aibox_file *f = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_file_read(src, &f, &e), AIBOX_OK);
    aibox_meta *g = NULL;
    for (int i = 0; i < f->meta.count; i++)
        if (!strcmp(f->meta.items[i].key, "aibox.graph")) g = &f->meta.items[i];
    assert_non_null(g);
    aibox_file_tensor *t = calloc((size_t)f->n_tensors + 1, sizeof *t);
    assert_non_null(t);
    int nt = 0;
    for (int k = 0; k < n_ed; k++) {
        if (ed[k].node < -1) continue;
        size_t at = ed[k].ip ? ip_slot(g, ed[k].node, ed[k].field) : slot(g, ed[k].node, ed[k].field);
        assert_true(at < (size_t)g->n);
        g->ints[at] = ed[k].value;
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
 * refusal's peak RSS stays under 64 MB plus the file's size. Before the
 * loader checked the stored tensors first, "dense 4M units" allocated and
 * zeroed 8 GB (parameters and gradients) for a 2 KB file. */
static void test_crafted_graphs_refused_cheaply(void **state)
{
    (void)state;
    char base[512], bad[512];
    path_in(base, sizeof base, "base.aibox");
    save_small(base);
    const hostile cases[] = {
        /* node 4 is the dense layer: ip 0 = units */
        {"dense 4M units", "claims 2^30 weights, stores 512", {{4, 0, 1 << 22, 1, NULL, NULL}}, 1, AIBOX_E_FORMAT,
         "needs 1073741824"},
        {"dense 2^24 units", "2^32 weights", {{4, 0, 1 << 24, 1, NULL, NULL}}, 1, AIBOX_E_FORMAT, "graph node 4"},
        {"dense 2^30 units", "beyond the unit limit", {{4, 0, 1 << 30, 1, NULL, NULL}}, 1, AIBOX_E_FORMAT, "units"},
        /* node 1 is the conv: ip 0 out channels, 1/2 kernel, 5..8 padding */
        {"conv 2^24 channels", "output 2^30 per sample, weights 151M", {{1, 0, 1 << 24, 1, NULL, NULL}}, 1,
         AIBOX_E_FORMAT, "graph node"},
        {"conv int-max kernel", "weights overflow 64 bits",
         {{1, 0, INT32_MAX, 1, NULL, NULL}, {1, 1, INT32_MAX, 1, NULL, NULL}, {1, 2, INT32_MAX, 1, NULL, NULL}}, 3,
         AIBOX_E_FORMAT, "graph node 1"},
        {"conv huge padding", "output side beyond the limit",
         {{1, 5, INT32_MAX, 1, NULL, NULL}, {1, 7, INT32_MAX, 1, NULL, NULL}}, 2, AIBOX_E_FORMAT, "padding"},
        {"input 65536x65536", "input beyond 2^31 values", {{-1, 2, 65536, 0, NULL, NULL}, {-1, 3, 65536, 0, NULL, NULL}},
         2, AIBOX_E_FORMAT, "input"},
        {"input 32768x32768", "flatten of 2^32 values",
         {{-1, 2, 32768, 0, NULL, NULL}, {-1, 3, 32768, 0, NULL, NULL}}, 2, AIBOX_E_FORMAT, "graph node 1"},
        {"node count 2^20", "claims a million nodes", {{-1, 5, 1 << 20, 0, NULL, NULL}}, 1, AIBOX_E_FORMAT,
         "malformed"},
        {"missing bias", "a tensor left out", {{-2, 0, 0, 0, "n1.p1", NULL}}, 1, AIBOX_E_FORMAT, "missing"},
        {"infinite weight", "a weight set to +Inf", {{-2, 0, 0, 0, NULL, "n4.p0"}}, 1, AIBOX_E_FORMAT, "non-finite"},
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
    snprintf(g_dir, sizeof g_dir, "/tmp/aibox_hostile_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crafted_graphs_refused_cheaply),
        cmocka_unit_test(test_loaded_model_has_no_gradients),
        cmocka_unit_test(test_info_reads_no_weights),
        cmocka_unit_test(test_save_refuses_nonfinite),
        cmocka_unit_test(test_context_beyond_memory_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
