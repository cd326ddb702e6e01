/* The classifier calls against a hand computation: preprocessing, the
 * context's output and a double softmax (or none when the model ends in a
 * softmax), labels with and without class names, non-finite outputs
 * refused, and the one-call aibox_classify_file. */
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

/* 1x8x8 -> conv -> relu -> gap -> dense 3 [-> softmax -> quantize] */
static aibox_model *make(int softmax, int named)
{
    aibox_model *m = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_model_create(&m, 1, 8, 8, &e), AIBOX_OK);
    int x = aibox_global_avgpool(m, aibox_relu(m, aibox_conv2d_simple(m, 0, 4, 3, 1, 1)));
    x = aibox_dense(m, x, 3, 1);
    if (softmax) aibox_quantize(m, aibox_softmax(m, x), 1.0f / 256, 0, 0, 255);
    assert_int_equal(aibox_model_finish(m, 9, &e), AIBOX_OK);
    size_t n;
    float *b = aibox_model_node_param(m, 4, 1, &n); /* distinct biases: clear winners */
    for (size_t i = 0; i < n; i++) b[i] = 0.3f * (float)i;
    if (named) {
        const char *names[3] = {"good", "scratch", "dent"};
        assert_int_equal(aibox_model_set_meta_strs(m, AIBOX_META_CLASS_NAMES, 3, names, &e), AIBOX_OK);
    }
    return m;
}

static void test_probabilities_and_labels(void **state)
{
    (void)state;
    aibox_image img = {12, 10, 3, malloc(12 * 10 * 3)};
    for (int i = 0; i < 12 * 10 * 3; i++) img.data[i] = (uint8_t)(i * 37 % 251);
    for (int softmax = 0; softmax < 2; softmax++) {
        aibox_model *m = make(softmax, softmax);
        aibox_error e = {0};
        assert_int_equal(aibox_model_outputs_probabilities(m), softmax);
        aibox_classifier *c = NULL;
        assert_int_equal(aibox_classifier_create(&c, m, 1, &e), AIBOX_OK);
        assert_int_equal(aibox_classifier_classes(c), 3);
        aibox_classification r;
        double p[3];
        assert_int_equal(aibox_classifier_run(c, &img, &r, p, &e), AIBOX_OK);
        /* by hand: preprocess, infer, softmax in double unless the model has one */
        aibox_preproc pp;
        assert_int_equal(aibox_preproc_from_model(&pp, m, &e), AIBOX_OK);
        float x[64];
        assert_int_equal(aibox_preprocess(&pp, &img, x, &e), AIBOX_OK);
        aibox_ctx *ctx = NULL;
        assert_int_equal(aibox_ctx_create(&ctx, m, NULL, &e), AIBOX_OK);
        assert_int_equal(aibox_ctx_infer(ctx, m, x, 1, &e), AIBOX_OK);
        const float *z = aibox_ctx_output(ctx, NULL, NULL, NULL);
        double want[3], sum = 0;
        for (int k = 0; k < 3; k++) sum += want[k] = softmax ? z[k] : exp(z[k]);
        int best = 0;
        for (int k = 0; k < 3; k++) {
            if (!softmax) want[k] /= sum;
            if (want[k] > want[best]) best = k;
        }
        AIBOX_TEST_CLOSE1("probability sum", p[0] + p[1] + p[2], 1.0, softmax ? 0.02 : 1e-12, 0);
        for (int k = 0; k < 3; k++) AIBOX_TEST_CLOSE1("probability", p[k], want[k], 1e-6, 1e-5);
        assert_int_equal(r.label, best);
        assert_true(r.confidence == p[best]);
        static const char *const named[3] = {"good", "scratch", "dent"}, *const numbered[3] = {"0", "1", "2"};
        assert_string_equal(r.name, softmax ? named[best] : numbered[best]);
        assert_int_equal(aibox_classifier_class_index(c, r.name), best);
        assert_int_equal(aibox_classifier_class_index(c, "nope"), -1);
        assert_null(aibox_classifier_class_name(c, 3));
        aibox_ctx_free(&ctx);
        aibox_classifier_free(&c);
        aibox_model_free(&m);
    }
    free(img.data);
}

/* Finite weights whose sums overflow: no result, AIBOX_E_NONFINITE. */
static void test_nonfinite_output_refused(void **state)
{
    (void)state;
    aibox_model *m = make(0, 1);
    size_t n;
    float *w = aibox_model_node_param(m, 4, 0, &n);
    for (size_t i = 0; i < n; i++) w[i] = 3e38f;
    aibox_error e = {0};
    aibox_classifier *c = NULL;
    assert_int_equal(aibox_classifier_create(&c, m, 1, &e), AIBOX_OK);
    aibox_image img = {8, 8, 1, malloc(64)};
    memset(img.data, 200, 64);
    aibox_classification r = {.label = 7};
    assert_int_equal(aibox_classifier_run(c, &img, &r, NULL, &e), AIBOX_E_NONFINITE);
    assert_non_null(strstr(e.msg, "not a finite number"));
    assert_null(r.name);
    aibox_classifier_free(&c);
    aibox_model_free(&m);
    free(img.data);
}

static void test_one_call(void **state)
{
    (void)state;
    char dir[] = "/tmp/aibox_classify_XXXXXX", mp[64], ip[64];
    assert_non_null(mkdtemp(dir));
    snprintf(mp, sizeof mp, "%s/m.aibox", dir);
    snprintf(ip, sizeof ip, "%s/x.png", dir);
    aibox_model *m = make(0, 1);
    aibox_error e = {0};
    assert_int_equal(aibox_model_save(m, mp, &e), AIBOX_OK);
    aibox_image img = {8, 8, 1, malloc(64)};
    for (int i = 0; i < 64; i++) img.data[i] = (uint8_t)(i * 3);
    assert_int_equal(aibox_image_write_png(&img, ip, &e), AIBOX_OK);
    int label = -1;
    double conf = 0;
    char name[16];
    assert_int_equal(aibox_classify_file(mp, ip, &label, &conf, name, sizeof name, &e), AIBOX_OK);
    aibox_classifier *c = NULL;
    aibox_classification r;
    assert_int_equal(aibox_classifier_create(&c, m, 0, &e), AIBOX_OK);
    assert_int_equal(aibox_classifier_run(c, &img, &r, NULL, &e), AIBOX_OK);
    assert_int_equal(label, r.label);
    assert_true(conf == r.confidence);
    assert_string_equal(name, r.name);
    assert_int_equal(aibox_classify_file(mp, "/nonexistent.png", &label, NULL, NULL, 0, &e), AIBOX_E_NOTFOUND);
    assert_non_null(strstr(e.msg, "/nonexistent.png"));
    aibox_classifier_free(&c);
    aibox_model_free(&m);
    free(img.data);
    unlink(mp), unlink(ip), rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probabilities_and_labels),
        cmocka_unit_test(test_nonfinite_output_refused),
        cmocka_unit_test(test_one_call),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
