/* Model files written before the current format (tests/fixtures/v1, made by
 * tests/fixtures/make_v1.c with the library at 5584171) still load, and give
 * the outputs that code computed: bit for bit with the same OpenBLAS kernel
 * set, within 1e-5 otherwise; saved again by this library they load and give
 * the same outputs once more. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "aibox.h"
#include "common/check.h"
#include "ops/ops.h" /* aibox_maha_pick: which Mahalanobis kernel scores here */

#define FIXTURES "tests/fixtures/v1"

static char g_dir[64];

/* Same values: bitwise when the stored kernel set is this one, else close. */
static void expect_same(const char *what, const float *got, const double *want, size_t n, const char *blas)
{
    int exact = blas && !strcmp(blas, aibox_blas_core());
    size_t diff = 0;
    for (size_t i = 0; i < n; i++) diff += got[i] != (float)want[i];
    print_message("# %s: %zu values, %zu differ bitwise (stored with %s, running %s)\n", what, n, diff, blas ? blas : "?",
                  aibox_blas_core());
    if (exact) assert_int_equal(diff, 0);
    else AIBOX_TEST_CLOSE(what, got, want, n, 1e-6, 1e-5);
}

static void check_classifier(const char *path, int frozen_too)
{
    aibox_model *m = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_model_load(&m, path, &e), AIBOX_OK);
    int n = 0, ny = 0, c, h, w;
    const double *xd = NULL, *yd = NULL;
    int64_t batch = 0;
    const char *blas = NULL;
    assert_int_equal(aibox_model_get_meta_floats(m, "fixture.input", &n, &xd), AIBOX_OK);
    assert_int_equal(aibox_model_get_meta_floats(m, "fixture.output", &ny, &yd), AIBOX_OK);
    assert_int_equal(aibox_model_get_meta_int(m, "fixture.batch", &batch), AIBOX_OK);
    assert_int_equal(aibox_model_get_meta_str(m, "fixture.blas", &blas), AIBOX_OK);
    aibox_model_input_shape(m, &c, &h, &w);
    float *x = aibox_test_floats((size_t)n);
    for (int i = 0; i < n; i++) x[i] = (float)xd[i];
    /* copies: the model that owns them is replaced by its re-saved copy below */
    double *want = aibox_test_doubles((size_t)ny);
    memcpy(want, yd, sizeof *want * (size_t)ny);
    yd = want;
    char blas_buf[64];
    snprintf(blas_buf, sizeof blas_buf, "%s", blas);
    blas = blas_buf;
    for (int round = 0; round < 2; round++) { /* as loaded; then saved by this library and loaded again */
        for (int frozen = 0; frozen <= frozen_too; frozen++) {
            aibox_ctx *ctx = NULL;
            assert_int_equal(aibox_ctx_create(&ctx, m, &(aibox_ctx_opts){.max_batch = (int)batch, .height = h, .width = w, .seed = 1}, &e), AIBOX_OK);
            if (frozen) assert_int_equal(aibox_ctx_freeze_weights(ctx, m, &e), AIBOX_OK);
            assert_int_equal(aibox_ctx_infer(ctx, m, x, (int)batch, &e), AIBOX_OK);
            const float *y = aibox_ctx_output(ctx, NULL, NULL, NULL);
            char what[300];
            snprintf(what, sizeof what, "%s%s%s", strrchr(path, '/') + 1, round ? " re-saved" : "",
                     frozen ? " frozen (Winograd)" : "");
            if (frozen) AIBOX_TEST_CLOSE(what, y, yd, (size_t)ny, 1e-5, 1e-4); /* other arithmetic, same model */
            else expect_same(what, y, yd, (size_t)ny, blas);
            aibox_ctx_free(&ctx);
        }
        char p[128];
        snprintf(p, sizeof p, "%s/resaved.aibox", g_dir);
        assert_int_equal(aibox_model_save(m, p, &e), AIBOX_OK);
        aibox_model_free(&m);
        assert_int_equal(aibox_model_load(&m, p, &e), AIBOX_OK);
    }
    free(x), free(want);
    aibox_model_free(&m);
}

static void test_all_kinds(void **state)
{
    (void)state;
    check_classifier(FIXTURES "/all_kinds.aibox", 1);
    /* the metadata came through: class names (UTF-8), preprocessing, user keys */
    aibox_model *m = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_model_load(&m, FIXTURES "/all_kinds.aibox", &e), AIBOX_OK);
    int n = 0;
    const char *const *names = NULL;
    assert_int_equal(aibox_model_get_meta_strs(m, "aibox.class_names", &n, &names), AIBOX_OK);
    assert_int_equal(n, 5);
    assert_string_equal(names[4], "caf\xc3\xa9");
    aibox_preproc pp;
    assert_int_equal(aibox_preproc_from_model(&pp, m, &e), AIBOX_OK);
    assert_int_equal(pp.resize, AIBOX_RESIZE_BILINEAR);
    assert_true(pp.mean[2] == 0.5f && pp.std[0] == 0.25f);
    int64_t iv = 0;
    assert_int_equal(aibox_model_get_meta_int(m, "user.count", &iv), AIBOX_OK);
    assert_int_equal(iv, -42);
    /* every layer kind is in this file (so the whole table is covered) */
    int seen[AIBOX_LAYER_KIND_COUNT] = {0};
    for (int i = 0; i < aibox_model_node_count(m); i++) seen[aibox_model_node_kind(m, i)] = 1;
    for (int k = 0; k < AIBOX_LAYER_KIND_COUNT; k++)
        if (!seen[k]) fail_msg("layer kind %s is missing from the fixture", aibox_layer_kind_name((aibox_layer_kind)k));
    aibox_model_free(&m);
}

static void test_small_preset(void **state)
{
    (void)state;
    check_classifier(FIXTURES "/small.aibox", 0);
}

static void test_padim(void **state)
{
    (void)state;
    aibox_padim *pd = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_padim_load(&pd, FIXTURES "/padim.aibox", &e), AIBOX_OK);
    const aibox_model *m = aibox_padim_model_const(pd);
    int nx = 0, nm = 0, ns = 0;
    const double *xd, *md, *sd;
    const char *blas = NULL;
    assert_int_equal(aibox_model_get_meta_floats(m, "fixture.input", &nx, &xd), AIBOX_OK);
    assert_int_equal(aibox_model_get_meta_floats(m, "fixture.map", &nm, &md), AIBOX_OK);
    assert_int_equal(aibox_model_get_meta_floats(m, "fixture.score", &ns, &sd), AIBOX_OK);
    assert_int_equal(aibox_model_get_meta_str(m, "fixture.blas", &blas), AIBOX_OK);
    float *x = aibox_test_floats((size_t)nx), *map = aibox_test_floats((size_t)nm), score[2];
    for (int i = 0; i < nx; i++) x[i] = (float)xd[i];
    aibox_padim_ctx *pc = NULL;
    assert_int_equal(aibox_padim_set_half(pd, 0, &e), AIBOX_OK); /* the fixture scored with float32 factors */
    assert_int_equal(aibox_padim_ctx_create(&pc, pd, 2, 1, &e), AIBOX_OK);
    assert_int_equal(aibox_padim_score(pc, x, 2, NULL, map, score, &e), AIBOX_OK);
    /* bit for bit also needs the Mahalanobis kernel it was made with (AVX2);
     * another where this build or CPU has none (plain C, NEON on aarch64) */
    char stored[96];
    int same_kernel = !strcmp(aibox_maha_pick(aibox_cpu_features(), 0).name, "avx2-f32");
    snprintf(stored, sizeof stored, "%s%s", blas, same_kernel ? "" : " and the AVX2 Mahalanobis kernel");
    expect_same("padim map", map, md, (size_t)nm, stored);
    expect_same("padim scores", score, sd, 2, stored);
    aibox_padim_ctx_free(&pc);
    aibox_padim_free(&pd);
    free(x), free(map);
}

static int setup(void **state)
{
    (void)state;
    if (access(FIXTURES "/all_kinds.aibox", R_OK) != 0) {
        fprintf(stderr, "run from the source tree (%s not found)\n", FIXTURES);
        return -1;
    }
    return aibox_test_mkdtemp(g_dir, sizeof g_dir, "fixtures");
}

static int teardown(void **state)
{
    (void)state;
    return aibox_test_rm_rf(g_dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_kinds),
        cmocka_unit_test(test_small_preset),
        cmocka_unit_test(test_padim),
    };
    return cmocka_run_group_tests_name("format-1 fixtures", tests, setup, teardown);
}
