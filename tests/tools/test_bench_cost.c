/* aibox-bench --cost: a conv + dense model built through the C API and saved,
 * its FLOPs, parameter and activation bytes against a hand count, as text
 * and as JSON; the 8-bit model's stored weight bytes; presets; bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "aibox.h"
#include "common/check.h"

static char bin[4096], dir[64];

static double json_num(const char *s, const char *key)
{
    char k[128];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(s, k);
    if (!p) fail_msg("no \"%s\" in %s", key, s);
    return strtod(p + strlen(k), NULL);
}

/* input 3x8x8 -> conv 4 channels 3x3 pad 1, bias -> ReLU -> flatten -> dense 5, bias */
static aibox_model *small_model(void)
{
    aibox_model *m = NULL;
    aibox_error err = {0};
    assert_int_equal(aibox_model_create(&m, 3, 8, 8, &err), AIBOX_OK);
    int x = aibox_conv2d_simple(m, 0, 4, 3, 1, 1);
    x = aibox_relu(m, x);
    x = aibox_flatten(m, x);
    x = aibox_dense(m, x, 5, 1);
    assert_true(x == 4);
    assert_int_equal(aibox_model_finish(m, 1, &err), AIBOX_OK);
    return m;
}

static int setup(void **state)
{
    (void)state;
    if (aibox_test_mkdtemp(dir, sizeof dir, "bench_cost")) return -1;
    char p[128];
    aibox_model *m = small_model();
    aibox_error err = {0};
    snprintf(p, sizeof p, "%s/m.aibox", dir);
    if (aibox_model_save(m, p, &err)) return -1;
    /* its 8-bit twin, calibrated on a few random images */
    float *calib = aibox_test_normal_images(4, 8, 3);
    aibox_model *q = NULL;
    if (aibox_model_quantize(&q, m, calib, 4, NULL, &err)) return fprintf(stderr, "%s\n", err.msg), -1;
    snprintf(p, sizeof p, "%s/q.aibox", dir);
    if (aibox_model_save(q, p, &err)) return -1;
    free(calib);
    aibox_model_free(&q);
    aibox_model_free(&m);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return aibox_test_rm_rf(dir);
}

/* Hand count. conv: 4 x 8 x 8 outputs x 3 x 3 x 3 weights = 6912 multiply-adds;
 * dense: 256 inputs x 5 units = 1280; 8192 in all = 16384 FLOPs. Parameters:
 * conv 108 + 4, dense 1280 + 5 = 1397 = 5588 bytes. Outputs: input 192,
 * conv 256, ReLU 256, flatten 256, dense 5: sum 965 floats = 3860 bytes;
 * live at once at most conv + ReLU or ReLU + flatten: 512 floats = 2048
 * bytes, first at node 2 (the ReLU). */
static void test_cost_float(void **state)
{
    (void)state;
    static char out[65536];
    int rc = aibox_test_run(out, sizeof out, "%s/aibox-bench --model %s/m.aibox --cost --json", bin, dir);
    assert_int_equal(rc, 0);
    assert_true(aibox_test_json_lines(out));
    print_message("# %s", out);
    assert_int_equal((long)json_num(out, "flops"), 16384);
    assert_int_equal((long)json_num(out, "multiply_adds"), 8192);
    assert_int_equal((long)json_num(out, "params"), 1397);
    assert_int_equal((long)json_num(out, "param_bytes"), 5588);
    assert_int_equal((long)json_num(out, "activation_sum_bytes"), 3860);
    assert_int_equal((long)json_num(out, "activation_peak_bytes"), 2048);
    assert_int_equal((long)json_num(out, "activation_peak_node"), 2);
    assert_null(strstr(out, "int_param_bytes"));
    /* per layer: the conv's and the dense layer's shares */
    const char *conv = strstr(out, "\"kind\":\"conv2d\"");
    assert_non_null(conv);
    assert_int_equal((long)json_num(conv, "flops"), 13824);
    const char *dense = strstr(out, "\"kind\":\"dense\"");
    assert_non_null(dense);
    assert_int_equal((long)json_num(dense, "flops"), 2560);
    /* text: one line per node and the totals */
    rc = aibox_test_run(out, sizeof out, "%s/aibox-bench --model %s/m.aibox --cost", bin, dir);
    assert_int_equal(rc, 0);
    print_message("%s", out);
    assert_non_null(strstr(out, "total: 0.016 MFLOPs (8192 multiply-adds), 1397 parameters"));
    assert_non_null(strstr(out, "peak live 0.002 MB (at node 2)"));
    assert_non_null(strstr(out, "   1 conv2d"));
    assert_non_null(strstr(out, "   4 dense"));
}

/* the 8-bit model: the same FLOPs; int8 weights and int32 biases stored:
 * 108 + 4 x 4 + 1280 + 5 x 4 = 1424 bytes */
static void test_cost_quantized(void **state)
{
    (void)state;
    static char out[65536];
    int rc = aibox_test_run(out, sizeof out, "%s/aibox-bench --model %s/q.aibox --cost --json", bin, dir);
    assert_int_equal(rc, 0);
    assert_true(aibox_test_json_lines(out));
    print_message("# %s", out);
    assert_non_null(strstr(out, "\"quantized\":true"));
    assert_int_equal((long)json_num(out, "flops"), 16384);
    assert_int_equal((long)json_num(out, "int_param_bytes"), 1424);
    assert_true(json_num(out, "int_activation_peak_bytes") * 4 == json_num(out, "activation_peak_bytes"));
    rc = aibox_test_run(out, sizeof out, "%s/aibox-bench --model %s/q.aibox --cost", bin, dir);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "0.001 MB as stored (int8 weights, int32 biases)"));
}

static void test_cost_preset_and_errors(void **state)
{
    (void)state;
    static char out[1 << 18];
    /* a preset: no timing, valid JSON, FLOPs in the expected range for the
     * small preset on 64x64 */
    int rc = aibox_test_run(out, sizeof out, "%s/aibox-bench --model small --cost --json", bin);
    assert_int_equal(rc, 0);
    assert_true(aibox_test_json_lines(out));
    assert_true(json_num(out, "flops") > 0);
    assert_null(strstr(out, "forward_ms"));
    rc = aibox_test_run(out, sizeof out, "%s/aibox-bench --help", bin);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "--cost"));
    assert_int_equal(aibox_test_run(NULL, 0, "%s/aibox-bench --model %s/none.aibox --cost 2>/dev/null", bin, dir), 2);
}

int main(int argc, char **argv)
{
    (void)argc;
    aibox_test_tools_dir(argv[0], bin, sizeof bin);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cost_float),
        cmocka_unit_test(test_cost_quantized),
        cmocka_unit_test(test_cost_preset_and_errors),
    };
    return cmocka_run_group_tests_name("aibox-bench --cost", tests, setup, teardown);
}
