/* The newcomer examples as a user builds them: against a staged install
 * through pkg-config, linked with the shared and with the static library
 * (make check builds them into build/installed/ first). Each runs on
 * generated data; the PaDiM example's AUROCs must equal what aibox-infer
 * --eval prints for the same model and folders, and the classifier example
 * must agree with aibox-infer. The staged tools (BUILD/stage/usr/bin) run
 * and train and classify as the built ones. */
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

static char build[4096], dir[64];
static const char *const kinds[2] = {"shared", "static"};

static double json_num(const char *s, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(s, k);
    return p ? atof(p + strlen(k)) : NAN;
}

static double text_num(const char *s, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "%s ", key);
    const char *p = strstr(s, k);
    return p ? atof(p + strlen(k)) : NAN;
}

/* The installed examples exist where make check builds them (not in the
 * sanitizer build, which tests the library's own objects). */
static void need_examples(void)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/installed/static/padim", build);
    if (access(p, X_OK)) {
        print_message("skipped: %s is missing (make installed-examples builds it; make check does)\n", p);
        skip();
    }
}

/* 32x32 grey stripes: class 0 horizontal, class 1 vertical. */
static void stripes(aibox_rng *r, int cls, const char *path)
{
    aibox_image img = {32, 32, 1, malloc(32 * 32)};
    int phase = (int)aibox_rng_below(r, 4);
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++)
            img.data[y * 32 + x] = (uint8_t)(((cls ? x : y) + phase) / 4 % 2 ? 190 : 60) + (uint8_t)aibox_rng_below(r, 40);
    aibox_error e = {0};
    assert_int_equal(aibox_image_write_png(&img, path, &e), AIBOX_OK);
    aibox_image_free(&img);
}

static void test_train_and_classify(void **state)
{
    (void)state;
    need_examples();
    char cmd[4096], p[512];
    static char out[1 << 16], out2[1 << 16];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/data/horizontal %s/data/vertical", dir, dir);
    assert_int_equal(system(cmd), 0);
    aibox_rng r;
    aibox_rng_seed(&r, 3);
    for (int i = 0; i < 24; i++) {
        snprintf(p, sizeof p, "%s/data/%s/img%02d.png", dir, i % 2 ? "vertical" : "horizontal", i / 2);
        stripes(&r, i % 2, p);
    }
    snprintf(p, sizeof p, "%s/data/vertical/broken.png", dir);
    FILE *f = fopen(p, "wb");
    fputs("not a picture", f);
    fclose(f);
    for (int k = 0; k < 2; k++) {
        int rc = aibox_test_run(out, sizeof out, "%s/installed/%s/train_folder %s/data %s/m_%s.aibox 4 32 2>&1", build,
                                kinds[k], dir, dir, kinds[k]);
        print_message("# train_folder (%s): exit %d\n%s", kinds[k], rc, out);
        assert_int_equal(rc, 0);
        assert_non_null(strstr(out, "skipped"));
        assert_non_null(strstr(out, "broken.png"));
    }
    /* the same data, seed and threads: the same model from either build */
    snprintf(p, sizeof p, "%s/data/vertical/img03.png", dir);
    int rc = aibox_test_run(out, sizeof out, "%s/installed/shared/classify %s/m_shared.aibox %s", build, dir, p);
    int rc2 = aibox_test_run(out2, sizeof out2, "%s/installed/static/classify %s/m_static.aibox %s", build, dir, p);
    print_message("# classify: %s", out);
    assert_int_equal(rc, 0);
    assert_int_equal(rc2, 0);
    /* the model describes itself: class names, through aibox-infer too */
    assert_non_null(strstr(out, ": vertical "));
    rc = aibox_test_run(out2, sizeof out2, "%s/bin/aibox-infer -m %s/m_shared.aibox %s", build, dir, p);
    assert_true(rc == 0);
    assert_non_null(strstr(out2, "\"label\":\"vertical\""));
    char want[64];
    snprintf(want, sizeof want, "%.4f", json_num(out2, "confidence"));
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "aibox_classify_file: vertical"));
    /* a bad file: a message naming it, exit 2 */
    rc = aibox_test_run(out, sizeof out, "%s/installed/static/classify %s/m_shared.aibox %s/data/vertical/broken.png 2>&1",
                        build, dir, dir);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "broken.png"));
}

static void test_padim_example_matches_infer(void **state)
{
    (void)state;
    need_examples();
    char cmd[4096], p[512];
    static char out[1 << 16], out2[1 << 16];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/good %s/test/good %s/test/bad/spot %s/heat", dir, dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    aibox_rng r;
    aibox_rng_seed(&r, 8);
    for (int i = 0; i < 15; i++) {
        snprintf(p, sizeof p, "%s/good/g%02d", dir, i);
        aibox_test_write_part(&r, p, 64, 64, 3, 0);
    }
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/test/good/t%02d", dir, i);
        aibox_test_write_part(&r, p, 64, 64, 3, 0);
        snprintf(p, sizeof p, "%s/test/bad/spot/d%02d", dir, i);
        aibox_test_write_part(&r, p, 64, 64, 3, 1);
    }
    /* the backbone: a small random CNN with stages at strides 2..16 */
    aibox_model *m = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_model_create(&m, 3, 64, 64, &e), AIBOX_OK);
    int x = 0;
    for (int i = 0; i < 4; i++) {
        aibox_conv_opts o = {8 + 4 * i, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1};
        x = aibox_relu(m, aibox_conv2d(m, x, &o));
    }
    assert_int_equal(aibox_model_finish(m, 5, &e), AIBOX_OK);
    snprintf(p, sizeof p, "%s/bb.aibox", dir);
    assert_int_equal(aibox_model_save(m, p, &e), AIBOX_OK);
    aibox_model_free(&m);
    for (int k = 0; k < 2; k++) {
        int rc = aibox_test_run(out, sizeof out, "%s/installed/%s/padim %s %s/good %s/p.aibox %s/test/good %s/test/bad %s/heat",
                                build, kinds[k], p, dir, dir, dir, dir, dir);
        print_message("# padim example (%s): exit %d\n%s", kinds[k], rc, out);
        assert_int_equal(rc, 0);
        rc = aibox_test_run(out2, sizeof out2,
                            "%s/bin/aibox-infer -m %s/p.aibox --eval --normal-dir %s/test/good --abnormal-dir %s/test/bad",
                            build, dir, dir, dir);
        print_message("# aibox-infer --eval: %s", out2);
        assert_int_equal(rc, 0);
        /* the same figures, to the printed digits */
        const char *keys[3] = {"image_auroc", "pixel_auroc", "aupro"};
        for (int q = 0; q < 3; q++) {
            double a = text_num(out, keys[q]), b = json_num(out2, keys[q]);
            assert_false(isnan(a) || isnan(b));
            assert_true(fabs(a - b) < 5e-7);
        }
        assert_non_null(strstr(out, "4 heatmaps written"));
    }
    snprintf(p, sizeof p, "%s/heat/d02.jpg.png", dir);
    aibox_image img = {0};
    assert_int_equal(aibox_image_load(&img, p, 0, &e), AIBOX_OK);
    assert_true(img.width == 64 && img.height == 64 && img.channels == 3);
    aibox_image_free(&img);
}

/* The tools as installed (make installed-examples stages them in BUILD/stage
 * with the pages): each prints the library's version and its usage, and the
 * staged aibox-train and aibox-infer train and classify as the built ones do:
 * the same model file, the same result line. */
static void test_staged_tools(void **state)
{
    (void)state;
    need_examples();
    static const char *const tools[] = {"aibox-train", "aibox-infer", "aibox-import", "aibox-bench", "aibox-quantize"};
    static char out[1 << 16], out2[1 << 16];
    char cmd[4096], want[64], p[4400];
    snprintf(want, sizeof want, " %s\n", aibox_version());
    for (int i = 0; i < 5; i++) {
        int rc = aibox_test_run(out, sizeof out, "%s/stage/usr/bin/%s --version", build, tools[i]);
        assert_int_equal(rc, 0);
        assert_true(!strncmp(out, tools[i], strlen(tools[i])) && strstr(out, want));
        rc = aibox_test_run(out, sizeof out, "%s/stage/usr/bin/%s --help", build, tools[i]);
        assert_int_equal(rc, 0);
        assert_true(!strncmp(out, "usage: ", 7) && !strncmp(out + 7, tools[i], strlen(tools[i])));
        snprintf(p, sizeof p, "%s/stage/usr/share/man/man1/%s.1", build, tools[i]);
        if (access(p, R_OK)) fail_msg("%s is not installed", p);
    }
    snprintf(p, sizeof p, "%s/stage/usr/share/man/man3/libaibox.3", build);
    if (access(p, R_OK)) fail_msg("%s is not installed", p);
    /* a tiny training with the staged tool and with the built one */
    snprintf(cmd, sizeof cmd, "mkdir -p %s/tiny/horizontal %s/tiny/vertical", dir, dir);
    assert_int_equal(system(cmd), 0);
    aibox_rng r;
    aibox_rng_seed(&r, 5);
    for (int i = 0; i < 16; i++) {
        snprintf(p, sizeof p, "%s/tiny/%s/img%02d.png", dir, i % 2 ? "vertical" : "horizontal", i / 2);
        stripes(&r, i % 2, p);
    }
    const char *bins[2] = {"stage/usr/bin", "bin"};
    for (int k = 0; k < 2; k++)
        assert_int_equal(aibox_test_run(NULL, 0, "%s/%s/aibox-train %s/tiny -o %s/tiny_%d.aibox --size 32 --epochs 2 "
                                                 "--batch 4 --threads 1 --seed 3 --min-samples 4 --quiet 2>/dev/null",
                                        build, bins[k], dir, dir, k),
                         0);
    snprintf(p, sizeof p, "%s/tiny/vertical/img03.png", dir);
    /* exit 0 (classified) or 1 (uncertain), not 2 or 3 */
    assert_in_range(aibox_test_run(out, sizeof out, "%s/stage/usr/bin/aibox-infer -m %s/tiny_0.aibox --threads 1 --format csv %s",
                                   build, dir, p), 0, 1);
    assert_in_range(aibox_test_run(out2, sizeof out2, "%s/bin/aibox-infer -m %s/tiny_1.aibox --threads 1 --format csv %s",
                                   build, dir, p), 0, 1);
    assert_non_null(strstr(out, "img03.png"));
    /* the same label and confidence (the timing column aside) */
    char *a = strstr(out, "img03.png"), *b = strstr(out2, "img03.png");
    assert_non_null(b);
    a[strcspn(a, "\n")] = 0, b[strcspn(b, "\n")] = 0;
    /* file,label,confidence,verdict: the first four fields */
    char *line[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        char *q = line[k];
        for (int f = 0; f < 4 && q; f++)
            if ((q = strchr(q, ','))) *q++ = f == 3 ? 0 : ',';
    }
    print_message("# staged aibox-infer: %s\n", a);
    assert_string_equal(a, b);
}

static int setup(void **state)
{
    (void)state;
    return aibox_test_mkdtemp(dir, sizeof dir, "examples");
}

static int teardown(void **state)
{
    (void)state;
    return aibox_test_rm_rf(dir);
}

int main(int argc, char **argv)
{
    (void)argc;
    snprintf(build, sizeof build, "%s", argv[0]); /* BUILD/tests/examples/test_examples */
    for (int up = 0; up < 3; up++) {
        char *slash = strrchr(build, '/');
        if (slash) *slash = 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_and_classify),
        cmocka_unit_test(test_padim_example_matches_infer),
        cmocka_unit_test(test_staged_tools),
    };
    return cmocka_run_group_tests_name("examples (installed)", tests, setup, teardown);
}
