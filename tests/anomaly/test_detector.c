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
    };
    return cmocka_run_group_tests_name("anomaly detectors", tests, setup, teardown);
}
