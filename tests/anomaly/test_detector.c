/* The anomaly library calls directly (not through the tools): thresholds by
 * every rule against hand computations, their metadata round trip (and
 * 0.1.0's keys), fitting a detector on a folder, judging an image (verdict,
 * regions over the defect, pictures), save/load, and evaluation against
 * metrics computed from the detector's own scores. */
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

static char g_dir[64];

static void test_threshold_rules(void **state)
{
    (void)state;
    const float good[5] = {1, 2, 3, 4, 10}, bad[3] = {5, 9, 20};
    aibox_error e = {0};
    aibox_threshold_spec sp;
    aibox_thresholds t;
    aibox_threshold_stats st;
    assert_int_equal(aibox_threshold_parse("max", &sp, &e), AIBOX_OK);
    assert_int_equal(aibox_thresholds_compute(&sp, good, 5, NULL, 0, NULL, NULL, 0, &t, &st, &e), AIBOX_OK);
    assert_true(t.image == nextafterf(10.0f, INFINITY)); /* just above the largest good score */
    assert_true(t.pixel == t.image && t.score_min == 1 && t.score_max == 10 && isnan(t.image_f1));
    AIBOX_TEST_CLOSE1("mean", st.good_mean, 4.0, 1e-12, 0);
    AIBOX_TEST_CLOSE1("sd", st.good_sd, sqrt(50.0 / 4), 1e-12, 0);
    AIBOX_TEST_CLOSE1("p99", st.good_p99, 4 + 0.96 * 6, 1e-6, 0); /* position 0.99 * 4 = 3.96 */
    assert_int_equal(aibox_threshold_parse("p99", &sp, &e), AIBOX_OK);
    assert_int_equal(aibox_thresholds_compute(&sp, good, 5, NULL, 0, NULL, NULL, 0, &t, NULL, &e), AIBOX_OK);
    AIBOX_TEST_CLOSE1("p99 rule", t.image, 9.76, 1e-6, 0);
    assert_int_equal(aibox_threshold_parse("sigma:2", &sp, &e), AIBOX_OK);
    assert_int_equal(aibox_thresholds_compute(&sp, good, 5, NULL, 0, NULL, NULL, 0, &t, NULL, &e), AIBOX_OK);
    AIBOX_TEST_CLOSE1("sigma rule", t.image, 4 + 2 * sqrt(12.5), 1e-12, 0);
    /* f1: with defects, the threshold aibox_metric_f1_best finds over all the scores */
    assert_int_equal(aibox_threshold_parse("f1", &sp, &e), AIBOX_OK);
    assert_int_equal(aibox_thresholds_compute(&sp, good, 5, bad, 3, NULL, NULL, 0, &t, &st, &e), AIBOX_OK);
    float want;
    double f1;
    const float all[8] = {1, 2, 3, 4, 10, 5, 9, 20};
    const uint8_t lab[8] = {0, 0, 0, 0, 0, 1, 1, 1};
    assert_int_equal(aibox_metric_f1_best(all, lab, 8, &want, &f1, &e), AIBOX_OK);
    assert_true(t.image == want && t.image_f1 == want && st.f1 == f1);
    AIBOX_TEST_CLOSE1("auroc", st.image_auroc, aibox_metric_auroc(all, lab, 8), 0, 0);
    assert_true(t.score_min == 1 && t.score_max == 20); /* over good and defects */
    assert_int_equal(aibox_threshold_parse("2.5", &sp, &e), AIBOX_OK);
    assert_int_equal(aibox_thresholds_compute(&sp, NULL, 0, NULL, 0, NULL, NULL, 0, &t, &st, &e), AIBOX_OK);
    assert_true(t.image == 2.5 && t.score_min == 0 && t.score_max == 2.5 && isnan(st.good_mean));
    /* refusals */
    assert_int_equal(aibox_threshold_parse("sigma:", &sp, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_threshold_parse("nan", &sp, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_threshold_parse("max", &sp, &e), AIBOX_OK);
    assert_int_equal(aibox_thresholds_compute(&sp, NULL, 0, bad, 3, NULL, NULL, 0, &t, NULL, &e), AIBOX_E_INVALID);
    const float nan_good[2] = {1, NAN};
    assert_int_equal(aibox_thresholds_compute(&sp, nan_good, 2, NULL, 0, NULL, NULL, 0, &t, NULL, &e), AIBOX_E_NONFINITE);
    /* normalisation: 0.5 at the threshold, clamped, NaN stays NaN */
    AIBOX_TEST_CLOSE1("norm", aibox_anomaly_normalise(12, 10, 0, 20), 0.6, 1e-12, 0);
    assert_true(aibox_anomaly_normalise(-100, 10, 0, 20) == 0 && aibox_anomaly_normalise(100, 10, 0, 20) == 1);
    assert_true(isnan(aibox_anomaly_normalise(NAN, 10, 0, 20)));
    char buf[32];
    aibox_threshold_parse("sigma:3", &sp, &e);
    aibox_threshold_format(&sp, buf, sizeof buf);
    assert_string_equal(buf, "sigma:3");
}

static void test_thresholds_in_models(void **state)
{
    (void)state;
    aibox_model *m = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_model_create(&m, 1, 4, 4, &e), AIBOX_OK);
    aibox_relu(m, 0);
    assert_int_equal(aibox_model_finish(m, 1, &e), AIBOX_OK);
    aibox_thresholds t = {3.5, 2.5, 1, 9, NAN, {AIBOX_THRESHOLD_SIGMA, 3}}, back;
    assert_int_equal(aibox_thresholds_from_model(&back, m, &e), AIBOX_E_NOTFOUND);
    assert_int_equal(aibox_thresholds_to_model(&t, m, &e), AIBOX_OK);
    assert_int_equal(aibox_thresholds_from_model(&back, m, &e), AIBOX_OK);
    assert_true(back.image == 3.5 && back.pixel == 2.5 && back.score_min == 1 && back.score_max == 9);
    assert_true(isnan(back.image_f1) && back.spec.rule == AIBOX_THRESHOLD_SIGMA && back.spec.value == 3);
    aibox_model_free(&m);
    /* a model of 0.1.0: the aibox.padim.* keys */
    assert_int_equal(aibox_model_create(&m, 1, 4, 4, &e), AIBOX_OK);
    aibox_relu(m, 0);
    assert_int_equal(aibox_model_finish(m, 1, &e), AIBOX_OK);
    assert_int_equal(aibox_model_set_meta_float(m, "aibox.padim.threshold", 7, &e), AIBOX_OK);
    assert_int_equal(aibox_model_set_meta_float(m, "aibox.padim.score_max", 11, &e), AIBOX_OK);
    assert_int_equal(aibox_model_set_meta_str(m, "aibox.padim.threshold_rule", "p99", &e), AIBOX_OK);
    assert_int_equal(aibox_thresholds_from_model(&back, m, &e), AIBOX_OK);
    assert_true(back.image == 7 && back.pixel == 7 && back.score_min == 0 && back.score_max == 11);
    assert_true(back.spec.rule == AIBOX_THRESHOLD_P99);
    assert_int_equal(aibox_model_set_meta_float(m, "aibox.padim.threshold", INFINITY, &e), AIBOX_OK);
    assert_int_equal(aibox_thresholds_from_model(&back, m, &e), AIBOX_E_FORMAT);
    t.image = NAN;
    assert_int_equal(aibox_thresholds_to_model(&t, m, &e), AIBOX_E_NONFINITE);
    aibox_model_free(&m);
}

/* The backbone: a small random CNN with stages at strides 2..16. */
static aibox_model *backbone(void)
{
    aibox_model *m = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_model_create(&m, 3, 64, 64, &e), AIBOX_OK);
    int x = 0;
    static const int ch[4] = {8, 12, 16, 16};
    for (int i = 0; i < 4; i++) {
        aibox_conv_opts o = {ch[i], 3, 3, 2, 2, 1, 1, 1, 1, 1, 1};
        x = aibox_relu(m, aibox_conv2d(m, x, &o));
    }
    assert_int_equal(aibox_model_finish(m, 5, &e), AIBOX_OK);
    return m;
}

static int skips;
static void on_skip(void *user, const char *path, const aibox_error *e)
{
    (void)user;
    print_message("# skipped %s: %s\n", path, e->msg);
    skips++;
}

static void test_fit_run_evaluate(void **state)
{
    (void)state;
    char p[512], cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/good %s/test/good %s/test/bad/spot", g_dir, g_dir, g_dir);
    assert_int_equal(system(cmd), 0);
    aibox_rng r;
    aibox_rng_seed(&r, 4);
    for (int i = 0; i < 16; i++) {
        snprintf(p, sizeof p, "%s/good/g%02d", g_dir, i);
        aibox_test_write_part(&r, p, 64, 64, i % 2 ? 1 : 3, 0);
    }
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s/test/good/t%02d", g_dir, i);
        aibox_test_write_part(&r, p, 64, 64, 1, 0);
        snprintf(p, sizeof p, "%s/test/bad/spot/d%02d", g_dir, i);
        aibox_test_write_part(&r, p, 64, 64, 1, 1);
    }
    snprintf(p, sizeof p, "%s/good/broken.jpg", g_dir);
    FILE *f = fopen(p, "wb");
    fputs("not an image", f);
    fclose(f);
    aibox_model *bb = backbone();
    aibox_padim_opts po = {.dims = 12, .seed = 2};
    aibox_fit_opts fo = {.padim = &po, .holdout = 0.25, .seed = 2, .backbone_name = "tiny", .on_skip = on_skip};
    aibox_fit_report rep;
    aibox_detector *d = NULL;
    aibox_error e = {0};
    snprintf(p, sizeof p, "%s/good", g_dir);
    assert_int_equal(aibox_detector_fit_folder(&d, bb, p, &fo, &rep, &e), AIBOX_OK);
    assert_int_equal(rep.fit + rep.holdout, 16);
    assert_int_equal(rep.skipped, 1);
    assert_int_equal(skips, 1);
    assert_string_equal(aibox_detector_method(d), "padim");
    const aibox_thresholds *t = aibox_detector_thresholds(d);
    assert_non_null(t);
    assert_true(t->image == nextafterf((float)rep.stats.good_max, INFINITY));
    int n_fp = 0;
    const int64_t *fps = NULL;
    assert_int_equal(aibox_model_get_meta_ints(aibox_detector_model(d), AIBOX_META_ANOMALY_FIT_FINGERPRINTS, &n_fp, &fps),
                     AIBOX_OK);
    assert_int_equal(n_fp, rep.fit);
    /* a defect: NG with a region over the square (x 32..41, y 21..30) */
    aibox_image img = {0}, pic = {0};
    snprintf(p, sizeof p, "%s/test/bad/spot/d01.jpg", g_dir);
    assert_int_equal(aibox_image_load(&img, p, 0, &e), AIBOX_OK);
    aibox_detection det;
    assert_int_equal(aibox_detector_run(d, &img, &det, &e), AIBOX_OK);
    print_message("# defect: score %.4g (threshold %.4g), %d regions\n", det.score, t->image, det.n_regions);
    assert_true(det.ng && det.score >= t->image && det.norm_score > 0.5);
    assert_true(det.n_regions >= 1);
    const aibox_region *g = &det.regions[0];
    assert_true(g->x <= 36 && g->x + g->w >= 36 && g->y <= 25 && g->y + g->h >= 25);
    assert_int_equal(aibox_detector_mask(d, &pic, &e), AIBOX_OK);
    assert_true(pic.width == 64 && pic.height == 64 && pic.channels == 1 && pic.data[25 * 64 + 36] == 255);
    aibox_image_free(&pic);
    assert_int_equal(aibox_detector_heatmap(d, &img, &pic, &e), AIBOX_OK);
    assert_true(pic.width == 64 && pic.height == 64 && pic.channels == 3);
    aibox_image_free(&pic);
    /* save, load: the same score, bit for bit */
    snprintf(p, sizeof p, "%s/d.aibox", g_dir);
    assert_int_equal(aibox_detector_save(d, p, &e), AIBOX_OK);
    aibox_detector *l = NULL;
    assert_int_equal(aibox_detector_load(&l, p, 1, &e), AIBOX_OK);
    aibox_detection again;
    assert_int_equal(aibox_detector_run(l, &img, &again, &e), AIBOX_OK);
    assert_true(again.score == det.score && again.n_regions == det.n_regions);
    aibox_image_free(&img);
    /* evaluation: the metrics of the detector's own scores */
    char nd[256], ad[256];
    snprintf(nd, sizeof nd, "%s/test/good", g_dir);
    snprintf(ad, sizeof ad, "%s/test/bad", g_dir);
    aibox_eval_opts eo = {.normal_dir = nd, .abnormal_dir = ad};
    aibox_eval_result res;
    assert_int_equal(aibox_detector_evaluate(l, &eo, &res, &e), AIBOX_OK);
    assert_true(res.normal == 5 && res.abnormal == 5 && res.excluded == 0 && res.failed == 0 && res.fingerprints);
    float sc[10];
    uint8_t lb[10];
    for (int i = 0; i < 10; i++) {
        snprintf(p, sizeof p, i < 5 ? "%s/test/good/t%02d.jpg" : "%s/test/bad/spot/d%02d.jpg", g_dir, i % 5);
        assert_int_equal(aibox_image_load(&img, p, 0, &e), AIBOX_OK);
        assert_int_equal(aibox_detector_score(l, &img, &sc[i], &e), AIBOX_OK);
        lb[i] = i >= 5;
        aibox_image_free(&img);
    }
    AIBOX_TEST_CLOSE1("image auroc", res.image_auroc, aibox_metric_auroc(sc, lb, 10), 0, 0);
    AIBOX_TEST_CLOSE1("f1", res.f1, aibox_metric_f1_at(sc, lb, 10, (float)t->image), 0, 0);
    assert_int_equal(res.n_classes, 1);
    assert_string_equal(res.classes[0].name, "spot");
    assert_int_equal(res.classes[0].n, 5);
    print_message("# evaluation: image AUROC %.3f, pixel AUROC %.3f, AUPRO %.3f\n", res.image_auroc, res.pixel_auroc,
                  res.aupro);
    aibox_eval_result_free(&res);
    /* the fitted images themselves are recognised in a normal folder */
    eo.normal_dir = fo.abnormal_dir = NULL;
    snprintf(nd, sizeof nd, "%s/good", g_dir);
    eo.normal_dir = nd;
    assert_int_equal(aibox_detector_evaluate(l, &eo, &res, &e), AIBOX_OK);
    assert_int_equal(res.excluded, rep.fit);
    assert_int_equal(res.normal, rep.holdout);
    assert_int_equal(res.failed, 1); /* the broken file */
    aibox_eval_result_free(&res);
    aibox_detector_free(&l);
    aibox_detector_free(&d);
    /* refusals */
    fo.threshold.rule = AIBOX_THRESHOLD_F1;
    snprintf(p, sizeof p, "%s/good", g_dir);
    assert_int_equal(aibox_detector_fit_folder(&d, bb, p, &fo, NULL, &e), AIBOX_E_INVALID);
    fo.threshold.rule = AIBOX_THRESHOLD_MAX, fo.holdout = -1;
    assert_int_equal(aibox_detector_fit_folder(&d, bb, p, &fo, NULL, &e), AIBOX_E_INVALID);
    assert_null(d);
    aibox_model_free(&bb);
}

/* Tiling: elongated parts fitted and scored tile by tile; the stitched map
 * against the tiles scored one by one through PaDiM's own context and
 * averaged in double; the plan's geometry; save/load; refusals. */
static void test_tiling(void **state)
{
    (void)state;
    char p[512], cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/tgood %s/tbad", g_dir, g_dir);
    assert_int_equal(system(cmd), 0);
    aibox_rng r;
    aibox_rng_seed(&r, 9);
    for (int i = 0; i < 12; i++) { /* 160 x 64 and 130 x 50 (resized to 166 x 64): 3 and 4 tiles across */
        snprintf(p, sizeof p, "%s/tgood/g%02d", g_dir, i);
        aibox_test_write_part(&r, p, i % 3 ? 160 : 130, i % 3 ? 64 : 50, 1, 0);
    }
    snprintf(p, sizeof p, "%s/tbad/d0", g_dir);
    aibox_test_write_part(&r, p, 130, 50, 1, 1); /* square x 65..85, y 16..36 */
    aibox_model *bb = backbone();
    aibox_padim_opts po = {.dims = 12, .seed = 2};
    aibox_fit_opts fo = {.padim = &po, .holdout = 0.25, .seed = 2, .tiling = {.side = 64, .overlap = 0.25}};
    aibox_fit_report rep;
    aibox_detector *d = NULL;
    aibox_error e = {0};
    snprintf(p, sizeof p, "%s/tgood", g_dir);
    assert_int_equal(aibox_detector_fit_folder(&d, bb, p, &fo, &rep, &e), AIBOX_OK);
    assert_int_equal(rep.fit, 9);
    long images = 0;
    aibox_padim_info(aibox_detector_padim(d), NULL, NULL, NULL, &images);
    print_message("# tiles fitted: %ld from %d images\n", images, rep.fit);
    assert_true(images >= 3L * rep.fit && images <= 4L * rep.fit); /* every tile is a sample */
    assert_int_equal(aibox_detector_tiling(d).side, 64);

    aibox_image img = {0};
    snprintf(p, sizeof p, "%s/tbad/d0.jpg", g_dir);
    assert_int_equal(aibox_image_load(&img, p, 0, &e), AIBOX_OK);
    float score;
    assert_int_equal(aibox_detector_score(d, &img, &score, &e), AIBOX_OK);
    int mw, mh;
    const float *map = aibox_detector_map(d, &mw, &mh);
    assert_int_equal(mw, 166), assert_int_equal(mh, 64); /* 130 x 50 with its short side at 64 */
    /* the reference: resize, crop each tile at 0, 34, 68, 102, score it alone, average in double */
    aibox_image big = {0};
    assert_int_equal(aibox_image_resize(&big, &img, 166, 64, aibox_detector_preproc(d)->resize, &e), AIBOX_OK);
    aibox_padim_ctx *pc = NULL;
    assert_int_equal(aibox_padim_ctx_create(&pc, aibox_detector_padim(d), 1, 1, &e), AIBOX_OK);
    double *sum = aibox_test_doubles(166 * 64), best = -INFINITY;
    int cnt[166] = {0};
    float *x = aibox_test_floats(64 * 64 * 3), tm[64 * 64], ts;
    int C = big.channels;
    aibox_image tile = {64, 64, C, malloc((size_t)64 * 64 * C)};
    for (int k = 0; k < 4; k++) {
        int x0 = 34 * k;
        for (int y = 0; y < 64; y++) memcpy(tile.data + y * 64 * C, big.data + (y * 166 + x0) * C, (size_t)64 * C);
        assert_int_equal(aibox_preprocess(aibox_detector_preproc(d), &tile, x, &e), AIBOX_OK);
        assert_int_equal(aibox_padim_score(pc, x, 1, NULL, tm, &ts, &e), AIBOX_OK);
        best = fmax(best, ts);
        for (int y = 0; y < 64; y++)
            for (int xx = 0; xx < 64; xx++) sum[y * 166 + x0 + xx] += tm[y * 64 + xx];
        for (int xx = 0; xx < 64; xx++) cnt[x0 + xx]++;
    }
    for (int y = 0; y < 64; y++)
        for (int xx = 0; xx < 166; xx++) sum[y * 166 + xx] /= cnt[xx];
    assert_true(aibox_test_close("stitched map", map, sum, 166 * 64, 1e-6, 1e-6));
    assert_true(score == (float)best);
    /* the verdict's regions are in the image's own pixels, over the square */
    aibox_detection det;
    assert_int_equal(aibox_detector_run(d, &img, &det, &e), AIBOX_OK);
    assert_true(det.ng && det.n_regions >= 1);
    const aibox_region *g = &det.regions[0];
    print_message("# tiled defect: score %.4g, region %d,%d %dx%d\n", det.score, g->x, g->y, g->w, g->h);
    assert_true(g->x <= 75 && g->x + g->w >= 75 && g->y <= 26 && g->y + g->h >= 26);
    /* save, load: the tiling travels with the model */
    snprintf(p, sizeof p, "%s/tiled.aibox", g_dir);
    assert_int_equal(aibox_detector_save(d, p, &e), AIBOX_OK);
    aibox_detector *l = NULL;
    assert_int_equal(aibox_detector_load(&l, p, 1, &e), AIBOX_OK);
    assert_int_equal(aibox_detector_tiling(l).side, 64);
    float again;
    assert_int_equal(aibox_detector_score(l, &img, &again, &e), AIBOX_OK);
    assert_true(again == score);
    /* a sliver needing thousands of tiles is refused, not run */
    aibox_image sliver = {4000, 1, 1, calloc(4000, 1)};
    assert_int_equal(aibox_detector_score(l, &sliver, &again, &e), AIBOX_E_INVALID);
    print_message("# %s\n", e.msg);
    assert_non_null(strstr(e.msg, "tiles"));
    aibox_image_free(&sliver);
    aibox_detector_free(&l);
    /* tilings the model cannot take */
    aibox_detector_free(&d);
    snprintf(p, sizeof p, "%s/tgood", g_dir);
    fo.tiling.side = 32;
    assert_int_equal(aibox_detector_fit_folder(&d, bb, p, &fo, NULL, &e), AIBOX_E_INVALID);
    fo.tiling = (aibox_tiling){.side = 64, .overlap = 0.95};
    assert_int_equal(aibox_detector_fit_folder(&d, bb, p, &fo, NULL, &e), AIBOX_E_INVALID);
    assert_null(d);
    aibox_padim_ctx_free(&pc);
    aibox_image_free(&img), aibox_image_free(&big), aibox_image_free(&tile);
    free(sum), free(x);
    aibox_model_free(&bb);
}

static int setup(void **state)
{
    (void)state;
    return aibox_test_mkdtemp(g_dir, sizeof g_dir, "detector");
}

static int teardown(void **state)
{
    (void)state;
    return aibox_test_rm_rf(g_dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threshold_rules),
        cmocka_unit_test(test_thresholds_in_models),
        cmocka_unit_test(test_fit_run_evaluate),
        cmocka_unit_test(test_tiling),
    };
    return cmocka_run_group_tests_name("anomaly detectors", tests, setup, teardown);
}
