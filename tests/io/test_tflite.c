/* TensorFlow Lite import: the pretrained MobileNets of ../shared/models/tflite
 * (or $AIBOX_MODELS) classify the reference images as TensorFlow Lite does,
 * and malformed files (truncations, byte flips, offsets outside the file, an
 * unknown operator) are refused with a message, never a crash. */
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
#include <sys/wait.h>
#include <unistd.h>

#include "aibox.h"
#include "common/check.h"

static char g_models[1024];
static char g_tmp[256];

static int find_models(void)
{
    const char *env = getenv("AIBOX_MODELS");
    const char *cands[2] = {env, "../shared/models/tflite"};
    struct stat st;
    for (int i = 0; i < 2; i++) {
        if (!cands[i]) continue;
        char probe[1100];
        snprintf(probe, sizeof probe, "%s/mobilenet_v1_0.25_128_quant.tflite", cands[i]);
        if (stat(probe, &st) == 0) {
            snprintf(g_models, sizeof g_models, "%s", cands[i]);
            return 1;
        }
    }
    return 0;
}

#define NEED_MODELS()                                                                        \
    do {                                                                                     \
        if (!g_models[0]) {                                                                  \
            print_message("models not found ($AIBOX_MODELS or ../shared/models/tflite)\n"); \
            skip();                                                                          \
        }                                                                                    \
    } while (0)

static void mpath(char *out, size_t cap, const char *leaf) { snprintf(out, cap, "%s/%s", g_models, leaf); }

/* faithful: 1 the float import's fake quantisation (8-bit models then stay
 * float); 0 the default, which keeps an 8-bit model's integers (it runs them). */
static aibox_model *import(const char *leaf, int faithful, int labels)
{
    char p[1200], lp[1200];
    aibox_import_opts o = {faithful, NULL, NULL, faithful};
    aibox_error err = {0};
    aibox_model *m = NULL;
    mpath(p, sizeof p, leaf);
    mpath(lp, sizeof lp, "imagenet_labels.txt");
    if (labels) o.labels_path = lp;
    aibox_status s = aibox_import_tflite(&m, p, &o, &err);
    if (s) print_message("%s\n", err.msg);
    assert_int_equal(s, AIBOX_OK);
    assert_non_null(m);
    return m;
}

/* Runs the model on an image with its stored preprocessing; returns top-1. */
static int classify_resized(aibox_model *m, const char *image, int resize, float *score, int *n_out)
{
    char p[1200];
    aibox_preproc pp;
    aibox_image img = {0};
    aibox_ctx *ctx = NULL;
    aibox_error err = {0};
    int c, h, w;
    mpath(p, sizeof p, image);
    assert_int_equal(aibox_preproc_from_model(&pp, m, &err), AIBOX_OK);
    assert_int_equal(pp.resize, AIBOX_RESIZE_BILINEAR);
    if (resize >= 0) pp.resize = (aibox_resize_mode)resize;
    assert_int_equal(aibox_image_load(&img, p, 0, &err), AIBOX_OK);
    float *x = malloc((size_t)pp.channels * pp.width * pp.height * sizeof *x);
    assert_non_null(x);
    assert_int_equal(aibox_preprocess(&pp, &img, x, &err), AIBOX_OK);
    assert_int_equal(aibox_ctx_create(&ctx, m, &(aibox_ctx_opts){.height = pp.height, .width = pp.width, .seed = 1}, &err), AIBOX_OK);
    assert_int_equal(aibox_ctx_infer(ctx, m, x, 1, &err), AIBOX_OK);
    const float *y = aibox_ctx_output(ctx, &c, &h, &w);
    int n = c * h * w, best = 0;
    for (int i = 1; i < n; i++)
        if (y[i] > y[best]) best = i;
    *score = y[best];
    if (n_out) *n_out = n;
    aibox_ctx_free(&ctx);
    aibox_image_free(&img);
    free(x);
    return best;
}

static int classify(aibox_model *m, const char *image, float *score, int *n_out)
{
    return classify_resized(m, image, -1, score, n_out);
}

static void test_burger_quant(void **state)
{
    (void)state;
    NEED_MODELS();
    aibox_model *m = import("mobilenet_v1_0.25_224_quant.tflite", 0, 1);
    const char *arch;
    int n;
    const char *const *names;
    assert_int_equal(aibox_model_get_meta_str(m, "aibox.arch", &arch), AIBOX_OK);
    assert_string_equal(arch, "tflite:mobilenet_v1_0.25_224_quant.tflite");
    assert_int_equal(aibox_model_get_meta_strs(m, "aibox.class_names", &n, &names), AIBOX_OK);
    assert_int_equal(n, 1001);
    assert_string_equal(names[0], "background");
    float score;
    int top = classify(m, "burger.jpg", &score, NULL);
    print_message("0.25_224_quant burger.jpg: top-1 %d (%s) %.4f\n", top, names[top], score);
    assert_int_equal(top, 934);
    assert_string_equal(names[934], "cheeseburger");
    /* upstream publishes 0.96 +- 0.01 through the Task Library's half-pixel
     * resize (test_task_library_resize); with TFLite's label_image resize this
     * float32 import measures 0.9715 */
    assert_true(score > 0.95f && score < 0.98f);
    aibox_model_free(&m);

    m = import("mobilenet_v1_0.25_224_quant.tflite", 1, 0);
    top = classify(m, "burger.jpg", &score, NULL);
    print_message("0.25_224_quant faithful burger.jpg: top-1 %d %.4f\n", top, score);
    assert_int_equal(top, 934);
    /* faithful: the softmax output sits on its uint8 grid (scale 1/256) as
     * TFLite's does; LiteRT 2.5 (XNNPACK) and Arm NN's CpuRef both give
     * 249/256 on these pixels */
    assert_float_equal(score, 249.0f / 256.0f, 1e-7);
    aibox_model_free(&m);
}


/* The upstream expectations come from the TFLite Task Library, whose image
 * pipeline resizes with libyuv (half-pixel centres): with that resize the
 * burger scores 0.96 +- 0.01 and the float model agrees with the quantised
 * one on all three images, sparrow.png included. */
static void test_task_library_resize(void **state)
{
    (void)state;
    NEED_MODELS();
    aibox_model *q = import("mobilenet_v1_0.25_224_quant.tflite", 0, 0);
    aibox_model *qf = import("mobilenet_v1_0.25_224_quant.tflite", 1, 0);
    aibox_model *f = import("mobilenet_v1_0.25_224_1_default_1.tflite", 0, 0);
    float s, sf;
    assert_int_equal(classify_resized(q, "burger.jpg", AIBOX_RESIZE_BILINEAR_CENTER, &s, NULL), 934);
    assert_int_equal(classify_resized(qf, "burger.jpg", AIBOX_RESIZE_BILINEAR_CENTER, &sf, NULL), 934);
    print_message("half-pixel resize: burger quant %.4f, faithful %.4f\n", s, sf);
    assert_true(fabsf(s - 0.96f) <= 0.01f && fabsf(sf - 0.96f) <= 0.01f);
    const char *imgs[3] = {"burger.jpg", "sparrow.png", "cat.bmp"};
    for (int i = 0; i < 3; i++) {
        int tq = classify_resized(q, imgs[i], AIBOX_RESIZE_BILINEAR_CENTER, &s, NULL);
        int tf = classify_resized(f, imgs[i], AIBOX_RESIZE_BILINEAR_CENTER, &sf, NULL);
        print_message("half-pixel resize: %s: quant %d %.4f, float %d %.4f\n", imgs[i], tq, s, tf, sf);
        assert_int_equal(tq, tf);
    }
    aibox_model_free(&q), aibox_model_free(&qf), aibox_model_free(&f);
}

static void test_float_matches_quant(void **state)
{
    (void)state;
    NEED_MODELS();
    aibox_model *q = import("mobilenet_v1_0.25_224_quant.tflite", 0, 0);
    aibox_model *f = import("mobilenet_v1_0.25_224_1_default_1.tflite", 0, 0);
    const char *imgs[3] = {"burger.jpg", "sparrow.png", "cat.bmp"};
    for (int i = 0; i < 3; i++) {
        float sq, sf;
        int tq = classify(q, imgs[i], &sq, NULL), tf = classify(f, imgs[i], &sf, NULL);
        print_message("%s: quant %d %.4f, float %d %.4f\n", imgs[i], tq, sq, tf, sf);
        /* sparrow.png is ambiguous for both 0.25 models (four birds within
         * 0.06 of each other): with this resize quant says 95, float 101 (as
         * Arm NN's float run); the Task Library's resize, where the image
         * comes from, gives 131 for both (test_task_library_resize). */
        if (i != 1) assert_int_equal(tq, tf);
    }
    aibox_model_free(&q);
    aibox_model_free(&f);
}

static void test_cat_128(void **state)
{
    (void)state;
    NEED_MODELS();
    for (int faithful = 0; faithful < 2; faithful++) {
        aibox_model *m = import("mobilenet_v1_0.25_128_quant.tflite", faithful, 0);
        float score;
        assert_int_equal(aibox_model_quantized(m), !faithful);
        int top = classify(m, "cat.bmp", &score, NULL);
        print_message("0.25_128_quant cat.bmp (%s): top-1 %d %.4f\n", faithful ? "faithful float" : "int8", top, score);
        assert_int_equal(top, 283);
        /* Coral's test: >= 0.36, on pixels resized as its test_utils does
         * (TFLite's RESIZE_BILINEAR, cast to uint8), which is libaibox's
         * "bilinear". In integers: 90/256, what TFLite 2.9's built-in
         * kernels give on these pixels (test_tflite_int8 checks every byte
         * against them live); the float imitation: 93/256, as LiteRT 2.5
         * (XNNPACK) does. (Rounding instead of the cast gives 88/256: the
         * score moves with the last bit.) */
        assert_float_equal(score, (faithful ? 93.0f : 90.0f) / 256.0f, 1e-6);
        aibox_model_free(&m);
    }
}

static void test_embedding(void **state)
{
    (void)state;
    NEED_MODELS();
    aibox_model *m = import("mobilenet_v1_1.0_224_quant_embedding_extractor.tflite", 0, 0);
    float score;
    int n;
    classify(m, "cat.bmp", &score, &n);
    assert_int_equal(n, 1024);
    aibox_model_free(&m);
}

/* aibox_import recognises each format by content; the stage ends at strides
 * 4, 8, 16 of MobileNet v1 1.0 are its 128/256/512-channel blocks. */
static void test_import_any(void **state)
{
    (void)state;
    NEED_MODELS();
    char p[1200], saved[512];
    aibox_error err = {0};
    aibox_model *m = NULL, *back = NULL;
    mpath(p, sizeof p, "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite");
    assert_int_equal(aibox_import(&m, p, NULL, &err), AIBOX_OK);
    static const int stride[3] = {4, 8, 16}, chans[3] = {128, 256, 512};
    for (int i = 0; i < 3; i++) {
        int node = aibox_model_stride_node(m, stride[i]), c, h, w;
        assert_true(node > 0);
        aibox_model_node_shape(m, node, &c, &h, &w);
        assert_int_equal(c, chans[i]);
        assert_int_equal(h, 224 / stride[i]);
        assert_int_equal(w, 224 / stride[i]);
    }
    assert_int_equal(aibox_model_stride_node(m, 3), -1);
    snprintf(saved, sizeof saved, "%s.any.aibox", g_tmp);
    assert_int_equal(aibox_model_save(m, saved, &err), AIBOX_OK);
    assert_int_equal(aibox_import(&back, saved, NULL, &err), AIBOX_OK);
    assert_int_equal(aibox_model_node_count(back), aibox_model_node_count(m));
    aibox_model_free(&back);
    mpath(p, sizeof p, "imagenet_labels.txt");
    assert_int_equal(aibox_import(&back, p, NULL, &err), AIBOX_E_FORMAT);
    assert_non_null(strstr(err.msg, "imagenet_labels.txt"));
    assert_null(back);
    assert_int_equal(aibox_import(&back, "/nonexistent/x.tflite", NULL, &err), AIBOX_E_IO);
    aibox_model_free(&m);
}

/* The fake-quantisation layer on its own, and a faithful import that survives
 * a save/load round trip with identical outputs. */
static void test_quantize_layer(void **state)
{
    (void)state;
    aibox_model *m = NULL;
    aibox_ctx *ctx = NULL;
    aibox_error err = {0};
    assert_int_equal(aibox_model_create(&m, 1, 1, 9, &err), AIBOX_OK);
    int q = aibox_quantize(m, 0, 0.5f, 2.0f, 0.0f, 255.0f);
    assert_true(q > 0);
    assert_int_equal(aibox_model_node_kind(m, q), AIBOX_LAYER_QUANTIZE);
    assert_string_equal(aibox_layer_kind_name(AIBOX_LAYER_QUANTIZE), "quantize");
    assert_int_equal(aibox_model_finish(m, 1, &err), AIBOX_OK);
    /* halves round to even, as TFLite's XNNPACK kernels (lrintf) do; LiteRT
     * disagrees with rounding them away from zero (Arm NN's std::round) on
     * cat.bmp: 0.25 / 0.5 = 0.5 -> 0, 1.25 / 0.5 = 2.5 -> 2, -0.75 / 0.5 = -1.5 -> -2 */
    const float x[9] = {-5.0f, -1.0f, 0.2f, 0.3f, 1.74f, 500.0f, 0.25f, 1.25f, -0.75f};
    const float want[9] = {-1.0f, -1.0f, 0.0f, 0.5f, 1.5f, 126.5f, 0.0f, 1.0f, -1.0f};
    assert_int_equal(aibox_ctx_create(&ctx, m, &(aibox_ctx_opts){.height = 1, .width = 9, .seed = 1}, &err), AIBOX_OK);
    assert_int_equal(aibox_ctx_infer(ctx, m, x, 1, &err), AIBOX_OK);
    int c, h, w;
    const float *y = aibox_ctx_output(ctx, &c, &h, &w);
    for (int i = 0; i < 9; i++) assert_float_equal(y[i], want[i], 1e-6);
    aibox_ctx_free(&ctx);
    aibox_model_free(&m);

    NEED_MODELS();
    m = import("mobilenet_v1_0.25_128_quant.tflite", 1, 1);
    char path[300];
    snprintf(path, sizeof path, "%s.aibox", g_tmp);
    assert_int_equal(aibox_model_save(m, path, &err), AIBOX_OK);
    aibox_model *m2 = NULL;
    assert_int_equal(aibox_model_load(&m2, path, &err), AIBOX_OK);
    unlink(path);
    float s1, s2;
    int t1 = classify(m, "cat.bmp", &s1, NULL), t2 = classify(m2, "cat.bmp", &s2, NULL);
    assert_int_equal(t1, t2);
    assert_float_equal(s1, s2, 1e-6);
    aibox_model_free(&m);
    aibox_model_free(&m2);
}

/* ------------------------------------------------------------------ malformed files */
static aibox_status try_bytes(const uint8_t *b, size_t len, aibox_error *err)
{
    FILE *f = fopen(g_tmp, "wb");
    assert_non_null(f);
    if (len) assert_int_equal(fwrite(b, 1, len, f), len);
    fclose(f);
    aibox_model *m = NULL;
    memset(err, 0, sizeof *err);
    aibox_status s = aibox_import_tflite(&m, g_tmp, NULL, err);
    if (s == AIBOX_OK) {
        assert_non_null(m);
        aibox_model_free(&m);
    } else {
        assert_null(m);
        assert_true(err->msg[0] != 0);
        assert_non_null(strstr(err->msg, g_tmp));
        assert_null(strchr(err->msg, '\n'));
    }
    return s;
}

static uint32_t rd32(const uint8_t *b, size_t p)
{
    return (uint32_t)b[p] | ((uint32_t)b[p + 1] << 8) | ((uint32_t)b[p + 2] << 16) | ((uint32_t)b[p + 3] << 24);
}

static void test_malformed(void **state)
{
    (void)state;
    NEED_MODELS();
    char p[1200];
    size_t len;
    mpath(p, sizeof p, "mobilenet_v1_0.25_128_quant.tflite");
    uint8_t *orig = aibox_test_slurp(p, &len), *b = malloc(len);
    aibox_error err;
    assert_non_null(b);

    /* The FlatBuffer ends where the appended metadata ZIP (labels) begins;
     * a cut inside the ZIP leaves a valid model. */
    size_t fb_end = len;
    for (size_t i = 8; i + 4 <= len; i++)
        if (!memcmp(orig + i, "PK\x03\x04", 4)) {
            fb_end = i;
            break;
        }
    /* truncations: every length up to 256, then spread over the FlatBuffer */
    for (size_t l = 0; l < fb_end; l += (l < 256 ? 1 : fb_end / 97 + 13)) {
        assert_int_not_equal(try_bytes(orig, l, &err), AIBOX_OK);
        if (l == 0 || l == 100) print_message("truncated at %zu: %s\n", l, err.msg);
    }
    assert_int_not_equal(try_bytes(orig, fb_end - 1, &err), AIBOX_OK);

    /* byte flips in the header area (root table, vtables, vectors of tables) */
    uint64_t r = 12345;
    int refused = 0;
    for (int i = 0; i < 600; i++) {
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t pos = (size_t)(r >> 33) % (len < 2048 ? len : 2048);
        memcpy(b, orig, len);
        b[pos] ^= (uint8_t)(1u << ((r >> 20) & 7));
        if (try_bytes(b, len, &err) != AIBOX_OK) refused++;
    }
    print_message("byte flips: %d of 600 refused\n", refused);

    /* offsets outside the file */
    memcpy(b, orig, len);
    b[0] = 0xf0, b[1] = 0xff, b[2] = 0xff, b[3] = 0x7f;
    assert_int_equal(try_bytes(b, len, &err), AIBOX_E_FORMAT);
    print_message("root offset: %s\n", err.msg);
    memcpy(b, orig, len);
    memcpy(b + 4, "XXXX", 4);
    assert_int_equal(try_bytes(b, len, &err), AIBOX_E_FORMAT);

    /* unknown operator: operator_codes[0] becomes RESIZE_BILINEAR (23) */
    memcpy(b, orig, len);
    size_t root = rd32(b, 0), vt = root - (size_t)(int32_t)rd32(b, root);
    unsigned off = (unsigned)(b[vt + 6] | (b[vt + 7] << 8)); /* field 1: operator_codes */
    assert_true(off != 0);
    size_t vec = root + off + rd32(b, root + off);
    size_t oc = vec + 4 + rd32(b, vec + 4);
    size_t ovt = oc - (size_t)(int32_t)rd32(b, oc);
    unsigned vts = (unsigned)(b[ovt] | (b[ovt + 1] << 8));
    unsigned f0 = vts > 4 ? (unsigned)(b[ovt + 4] | (b[ovt + 5] << 8)) : 0;
    unsigned f3 = vts > 10 ? (unsigned)(b[ovt + 10] | (b[ovt + 11] << 8)) : 0;
    assert_true(f0 || f3);
    if (f0) b[oc + f0] = 23;
    if (f3) b[oc + f3] = 23, b[oc + f3 + 1] = 0, b[oc + f3 + 2] = 0, b[oc + f3 + 3] = 0;
    assert_int_equal(try_bytes(b, len, &err), AIBOX_E_UNSUPPORTED);
    print_message("unknown operator: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "is RESIZE_BILINEAR, which libaibox does not import"));

    /* not a file at all */
    aibox_model *m = NULL;
    assert_int_equal(aibox_import_tflite(&m, "/nonexistent/x.tflite", NULL, &err), AIBOX_E_NOTFOUND); /* as every reader says */
    free(b);
    free(orig);
}

/* ------------------------------------------------------------ crafted files */
/* Imports path (labels: a labels file or NULL) in a fresh process (this
 * binary run again with --import, see main) and returns that process's peak
 * RSS in bytes: its VmHWM, which starts anew with the exec (wait4's
 * ru_maxrss would also count this test's own memory, inherited through
 * fork and kept across exec). *st and msg receive the importer's verdict. */
static long crafted_import(const char *path, const char *labels, aibox_status *st, char *msg, size_t cap)
{
    char *argv[] = {"test_tflite", "--import", (char *)path, (char *)(labels ? labels : ""), NULL};
    return aibox_test_child_verdict(argv, st, msg, cap);
}


/* The child side of crafted_import: status, peak RSS in kB, the message
 * (an empty path: nothing is read, for the process's own baseline). */
static int import_main(const char *path, const char *labels)
{
    aibox_import_opts o = {0, *labels ? labels : NULL, NULL, 0};
    aibox_model *m = NULL;
    aibox_error err = {0};
    aibox_status s = *path ? aibox_import_tflite(&m, path, &o, &err) : AIBOX_E_INVALID;
    aibox_model_free(&m);
    aibox_test_print_verdict(s, err.msg);
    return 0;
}

static long file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (long)st.st_size;
}

/* Each crafted file (tests/io/tflite_crafted.py) is refused with one line
 * naming it, and refusing costs less than 64 MB plus the file's size
 * (not asserted under ASan, whose quarantine and shadow inflate RSS). */
static void test_crafted_memory(void **state)
{
    (void)state;
    char dir[64], cmd[256];
    snprintf(dir, sizeof dir, "/tmp/aibox_tflite_crafted_XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/io/tflite_crafted.py %s", dir);
    if (system(cmd) != 0) {
        rmdir(dir);
        print_message("tests/io/tflite_crafted.py did not run (python3 missing?)\n");
        skip();
    }
    static const struct {
        const char *file, *labels, *want;
    } cases[] = {
        {"many_tensors", NULL, "1000000 tensors"},
        {"shared_weights", NULL, "weights add up"},
        {"big_weights_bad_bias", NULL, "expected 1024"},
        {"huge_filter_shape", NULL, "for its shape"},
        {"shape_overflow", NULL, "for its shape"},
        {"offset_past_end", NULL, "outside the file"},
        {"labels_newlines", "labels_newlines.txt", "labels for a model with 3 outputs"},
    };
    const int asan = getenv("AIBOX_ASAN") != NULL;
    long emu_base = 0; /* under an emulator, its own memory (in base) is not the reader's */
    aibox_status s0;
    char m0[AIBOX_ERROR_MSG_LEN];
    long base = crafted_import("", NULL, &s0, m0, sizeof m0); /* the process alone (libraries, OpenBLAS) */
    if (aibox_test_emulator()) emu_base = base;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[160], lpath[160], msg[AIBOX_ERROR_MSG_LEN];
        if (cases[i].labels) {
            snprintf(path, sizeof path, "tests/fuzz/corpus/tflite/float_conv_dw_fc_softmax.tflite");
            snprintf(lpath, sizeof lpath, "%s/%s", dir, cases[i].labels);
        } else {
            snprintf(path, sizeof path, "%s/%s.tflite", dir, cases[i].file);
        }
        aibox_status s;
        long rss = crafted_import(path, cases[i].labels ? lpath : NULL, &s, msg, sizeof msg);
        long size = file_size(cases[i].labels ? lpath : path);
        print_message("# crafted tflite %s (%.1f MB): %s, peak RSS %.1f MB (%.1f MB over the %.1f MB of a process "
                      "that reads nothing): %s\n", cases[i].file, size / 1048576.0, s ? "refused" : "ACCEPTED",
                      rss / 1048576.0, (rss - base) / 1048576.0, base / 1048576.0, msg);
        if (s == AIBOX_OK) fail_msg("%s was accepted", cases[i].file);
        if (!strstr(msg, cases[i].labels ? lpath : path) || !strstr(msg, cases[i].want) || strchr(msg, '\n'))
            fail_msg("%s: message '%s' (wanted '%s')", cases[i].file, msg, cases[i].want);
        if (!asan && rss - emu_base >= (64L << 20) + size) fail_msg("%s: peak RSS %ld bytes", cases[i].file, rss);
        unlink(cases[i].labels ? lpath : path);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "--import")) return import_main(argv[2], argv[3]);
    find_models();
    snprintf(g_tmp, sizeof g_tmp, "/tmp/aibox_test_tflite_%d.tflite", (int)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burger_quant), cmocka_unit_test(test_float_matches_quant),
        cmocka_unit_test(test_cat_128),      cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_quantize_layer), cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_import_any),      cmocka_unit_test(test_task_library_resize),
        cmocka_unit_test(test_crafted_memory),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    unlink(g_tmp);
    char extra[300];
    snprintf(extra, sizeof extra, "%s.any.aibox", g_tmp);
    unlink(extra);
    return rc;
}
