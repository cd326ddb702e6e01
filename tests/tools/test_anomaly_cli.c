/* aibox-train padim|patchcore|autoencoder and aibox-infer on their models as a user runs them: a
 * generated folder of good parts (grey and RGB, several sizes, two bad files,
 * masks beside the images), defects with masks, the JSON summary, verdicts
 * and regions, heatmap and mask PNGs, --eval, and refused inputs. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "aibox.h"
#include "common/check.h"

static char bin[4096], dir[64];


#define PATHF(buf, ...) assert_true(snprintf(buf, sizeof buf, __VA_ARGS__) < (int)sizeof buf)

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/aibox_anomaly_cli_%d", (int)getpid());
    char cmd[512], p[512];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/good/a %s/good/b %s/bad/spot %s/heat %s/mask", dir, dir, dir, dir, dir);
    if (system(cmd)) return -1;
    aibox_rng r;
    aibox_rng_seed(&r, 1);
    static const int sizes[3][2] = {{64, 64}, {96, 72}, {120, 90}};
    for (int i = 0; i < 24; i++) { /* grey and RGB, three sizes, two sub-folders */
        snprintf(p, sizeof p, "%s/good/%s/g%02d", dir, i % 2 ? "a" : "b", i);
        aibox_test_write_part(&r, p, sizes[i % 3][0], sizes[i % 3][1], i % 4 ? 1 : 3, 0);
    }
    for (int i = 0; i < 6; i++) {
        snprintf(p, sizeof p, "%s/bad/spot/d%02d", dir, i);
        aibox_test_write_part(&r, p, sizes[i % 3][0], sizes[i % 3][1], 1, 1);
    }
    /* two bad files among the good ones: a truncated JPEG and text named .jpg */
    snprintf(p, sizeof p, "%s/good/a/g01.jpg", dir);
    FILE *f = fopen(p, "rb");
    unsigned char buf[400];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    snprintf(p, sizeof p, "%s/good/a/truncated.jpg", dir);
    f = fopen(p, "wb");
    fwrite(buf, 1, n, f);
    fclose(f);
    snprintf(p, sizeof p, "%s/good/b/notes.jpg", dir);
    f = fopen(p, "wb");
    fputs("not an image\n", f);
    fclose(f);
    /* the backbone: a small random CNN with stages at strides 2..16 */
    aibox_model *m = NULL;
    aibox_error e;
    if (aibox_model_create(&m, 3, 64, 64, &e)) return -1;
    int x = 0;
    static const int ch[4] = {8, 12, 16, 16};
    for (int i = 0; i < 4; i++) {
        aibox_conv_opts o = {ch[i], 3, 3, 2, 2, 1, 1, 1, 1, 1, 1};
        x = aibox_relu(m, aibox_conv2d(m, x, &o));
    }
    snprintf(p, sizeof p, "%s/backbone.aibox", dir);
    if (aibox_model_finish(m, 5, &e) || aibox_model_save(m, p, &e)) return -1;
    aibox_model_free(&m);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) ? -1 : 0;
}

static double json_num(const char *s, const char *key)
{
    char k[128];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(s, k);
    assert_non_null(p);
    return strtod(p + strlen(k), NULL);
}

/* Either anomaly method through the same tools, the same fixture and the
 * same expectations: the JSON fields, verdicts, regions and pictures do not
 * depend on the method. */
static void fit_infer_eval(const char *method)
{
    static char out[1 << 16];
    char args[512];
    if (!strcmp(method, "autoencoder")) /* no backbone: a small network trained for a while */
        PATHF(args, "--size 64 --width 16 --epochs 80 --batch 8 --lr 0.002 --residual l2");
    else
        PATHF(args, "--backbone %s/backbone.aibox --dims 20", dir);
    int rc = aibox_test_run(out, sizeof out,
                 "%s/aibox-train %s %s/good -o %s/p.aibox %s --holdout 0.25 "
                 "--abnormal-dir %s/bad --seed 3 --quiet 2>%s/train.log",
                 bin, method, dir, dir, args, dir, dir);
    print_message("%s", out);
    assert_int_equal(rc, 0);
    assert_true(aibox_test_json_lines(out));
    assert_non_null(strstr(out, "truncated.jpg"));
    assert_non_null(strstr(out, "notes.jpg"));
    assert_int_equal((int)json_num(out, "skipped"), 2);
    assert_int_equal((int)json_num(out, "abnormal"), 6);
    double thr = json_num(out, "threshold");
    assert_true(thr > 0);
    char want[64];
    snprintf(want, sizeof want, "\"method\":\"%s\"", method);
    assert_non_null(strstr(out, want));
    assert_true(json_num(out, "image_auroc") >= 0.99); /* a bright square on texture is easy */

    /* a defect: NG, with a region over the square (x 48..63, y 24..39 at 96x72; centre 56, 32) */
    rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/p.aibox --heatmap %s/heat --mask %s/mask %s/bad/spot/d01.jpg", bin,
             dir, dir, dir, dir);
    print_message("%s", out);
    assert_int_equal(rc, 1);
    assert_true(aibox_test_json_lines(out));
    assert_non_null(strstr(out, "\"verdict\":\"NG\""));
    int rx = (int)json_num(out, "x"), ry = (int)json_num(out, "y"), rw = (int)json_num(out, "w"),
        rh = (int)json_num(out, "h");
    assert_true(rx <= 56 && rx + rw >= 56 && ry <= 32 && ry + rh >= 32);
    assert_true(json_num(out, "norm_score") > 0.5);
    char p[512];
    aibox_image img = {0};
    aibox_error e;
    PATHF(p, "%s/heat/d01.png", dir);
    assert_int_equal(aibox_image_load(&img, p, 0, &e), AIBOX_OK);
    assert_int_equal(img.width, 96), assert_int_equal(img.height, 72), assert_int_equal(img.channels, 3);
    aibox_image_free(&img);
    PATHF(p, "%s/mask/d01.png", dir);
    assert_int_equal(aibox_image_load(&img, p, 0, &e), AIBOX_OK);
    assert_int_equal(img.width, 96), assert_int_equal(img.height, 72);
    assert_int_equal(img.data[32 * 96 + 56], 255); /* the square's centre is marked */
    assert_int_equal(img.data[70 * 96 + 2], 0);
    aibox_image_free(&img);

    /* evaluation leaves the fitted images out and finds the squares */
    rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/p.aibox --eval --normal-dir %s/good --abnormal-dir %s/bad 2>/dev/null",
             bin, dir, dir, dir);
    print_message("%s", out);
    assert_int_equal(rc, 2); /* the two bad files are reported */
    assert_true(aibox_test_json_lines(out));
    assert_int_equal((int)json_num(out, "abnormal"), 6);
    assert_int_equal((int)json_num(out, "failed"), 2);
    assert_true(json_num(out, "excluded_fit_images") >= 15);
    assert_true(json_num(out, "image_auroc") >= 0.99);
    assert_non_null(strstr(out, "\"fp\":0,")); /* "max": every held-out good part passes */
    assert_true(json_num(out, "pixel_auroc") >= 0.9);
    assert_true(json_num(out, "aupro") > 0.5);
    assert_non_null(strstr(out, "\"spot\":{"));
}

static void test_fit_infer_eval(void **state)
{
    (void)state;
    fit_infer_eval("padim");
}

static void test_patchcore_fit_infer_eval(void **state)
{
    (void)state;
    fit_infer_eval("patchcore");
}

static void test_autoencoder_fit_infer_eval(void **state)
{
    (void)state;
    fit_infer_eval("autoencoder");
}

static void test_refusals(void **state)
{
    (void)state;
    static char out[1 << 14];
    char p[512];
    /* a backbone that is not a model: exit 3, the file named, nothing written */
    PATHF(p, "%s/good/b/notes.jpg", dir);
    int rc = aibox_test_run(out, sizeof out, "%s/aibox-train padim %s/good -o %s/x.aibox --backbone %s 2>&1", bin, dir, dir, p);
    assert_int_equal(rc, 3);
    assert_non_null(strstr(out, "notes.jpg"));
    PATHF(p, "%s/x.aibox", dir);
    assert_int_not_equal(access(p, F_OK), 0);
    /* bad usage */
    rc = aibox_test_run(out, sizeof out, "%s/aibox-train padim %s/good -o %s/x.aibox 2>&1", bin, dir, dir);
    assert_int_equal(rc, 2);
    rc = aibox_test_run(out, sizeof out, "%s/aibox-train padim %s/good -o %s/x.aibox --backbone %s/backbone.aibox --dims 999 2>&1",
             bin, dir, dir, dir);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "channels"));
    rc = aibox_test_run(out, sizeof out, "%s/aibox-train padim %s/good -o %s/x.aibox --backbone %s/backbone.aibox --threshold f1 2>&1",
             bin, dir, dir, dir);
    assert_int_equal(rc, 2);
    /* a truncated PaDiM model: aibox-infer exits 3 naming it */
    rc = aibox_test_run(NULL, 0, "head -c 5000 %s/p.aibox > %s/cut.aibox", dir, dir);
    assert_int_equal(rc, 0);
    rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/cut.aibox %s/bad/spot/d00.jpg 2>&1", bin, dir, dir);
    assert_int_equal(rc, 3);
    assert_non_null(strstr(out, "cut.aibox"));
    /* --eval on a classifier is refused */
    rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/backbone.aibox --eval --normal-dir %s/good --abnormal-dir %s/bad 2>&1",
             bin, dir, dir, dir);
    assert_int_equal(rc, 2);
}

/* Degenerate runs still print strict JSON (--holdout 0 printed nan and -inf),
 * and a PaDiM model whose threshold is not finite is refused (exit 3) rather
 * than passing every part. */
static void test_degenerate_and_nonfinite(void **state)
{
    (void)state;
    static char out[1 << 16];
    int rc = aibox_test_run(out, sizeof out,
                            "%s/aibox-train padim %s/good -o %s/h0.aibox --backbone %s/backbone.aibox --dims 8 --holdout 0 "
                            "--threshold 5 --quiet 2>/dev/null",
                            bin, dir, dir, dir);
    print_message("# --holdout 0: %s", out);
    assert_int_equal(rc, 0);
    assert_true(aibox_test_json_lines(out));
    assert_non_null(strstr(out, "\"holdout_scores\":{\"min\":null"));
    /* the same model with a NaN threshold */
    char p[512], q[512];
    PATHF(p, "%s/h0.aibox", dir);
    PATHF(q, "%s/nan_thr.aibox", dir);
    aibox_padim *pd = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_padim_load(&pd, p, &e), AIBOX_OK);
    assert_int_equal(aibox_model_set_meta_float(aibox_padim_model(pd), AIBOX_META_ANOMALY_THRESHOLD, NAN, &e), AIBOX_OK);
    assert_int_equal(aibox_padim_save(pd, q, &e), AIBOX_OK);
    aibox_padim_free(&pd);
    rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s %s/bad/spot/d00.jpg 2>&1", bin, q, dir);
    print_message("# NaN threshold: exit %d, %s", rc, out);
    assert_int_equal(rc, 3);
    assert_non_null(strstr(out, "not finite"));
    assert_null(strstr(out, "verdict"));
}

/* The MVTec AD layout: train/good/000.jpg ... and test/good/000.jpg ... are
 * different images with the same names. Evaluation leaves out only images
 * whose content the model was fitted on (a copy of a training image, under
 * another name), not names: before, every test/good image was dropped. */
static void test_eval_mvtec_layout(void **state)
{
    (void)state;
    static char out[1 << 16];
    char cmd[1024], p[512];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/mv/train/good %s/mv/test/good %s/mv/test_defects/crack", dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    aibox_rng r;
    aibox_rng_seed(&r, 9);
    for (int i = 0; i < 12; i++) {
        PATHF(p, "%s/mv/train/good/%03d", dir, i);
        aibox_test_write_part(&r, p, 64, 64, 1, 0);
    }
    for (int i = 0; i < 6; i++) {
        PATHF(p, "%s/mv/test/good/%03d", dir, i);
        aibox_test_write_part(&r, p, 64, 64, 1, 0);
    }
    for (int i = 0; i < 4; i++) {
        PATHF(p, "%s/mv/test_defects/crack/%03d", dir, i);
        aibox_test_write_part(&r, p, 64, 64, 1, 1);
    }
    int rc = aibox_test_run(out, sizeof out,
                            "%s/aibox-train padim %s/mv/train/good -o %s/mv.aibox --backbone %s/backbone.aibox --dims 8 "
                            "--holdout 0.25 --quiet 2>/dev/null",
                            bin, dir, dir, dir);
    assert_int_equal(rc, 0);
    rc = aibox_test_run(out, sizeof out,
                        "%s/aibox-infer -m %s/mv.aibox --eval --normal-dir %s/mv/test/good --abnormal-dir "
                        "%s/mv/test_defects 2>/dev/null",
                        bin, dir, dir, dir);
    print_message("# MVTec layout: %s", out);
    assert_int_equal(rc, 0);
    assert_true(aibox_test_json_lines(out));
    assert_int_equal((int)json_num(out, "normal"), 6); /* every test/good image, same names or not */
    assert_int_equal((int)json_num(out, "excluded_fit_images"), 0);
    assert_non_null(strstr(out, "\"excluded_by\":\"content fingerprint\""));
    /* a fitted image copied under a new name is left out; a held-out one is not */
    snprintf(cmd, sizeof cmd, "for f in %s/mv/train/good/*.jpg; do cp $f %s/mv/test/good/copy_$(basename $f); done", dir,
             dir);
    assert_int_equal(system(cmd), 0);
    rc = aibox_test_run(out, sizeof out,
                        "%s/aibox-infer -m %s/mv.aibox --eval --normal-dir %s/mv/test/good --abnormal-dir "
                        "%s/mv/test_defects 2>/dev/null",
                        bin, dir, dir, dir);
    print_message("# with the 12 training images copied in: %s", out);
    assert_int_equal((int)json_num(out, "excluded_fit_images"), 9); /* 12 - 3 held out */
    assert_int_equal((int)json_num(out, "normal"), 6 + 3);
}

int main(int argc, char **argv)
{
    (void)argc;
    aibox_test_tools_dir(argv[0], bin, sizeof bin);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fit_infer_eval),
        cmocka_unit_test(test_patchcore_fit_infer_eval),
        cmocka_unit_test(test_autoencoder_fit_infer_eval),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_degenerate_and_nonfinite),
        cmocka_unit_test(test_eval_mvtec_layout),
    };
    return cmocka_run_group_tests_name("anomaly tools", tests, setup, teardown);
}
