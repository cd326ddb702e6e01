/* aibox-train and aibox-infer as a user runs them: a generated two-class
 * folder (with five bad files), training, the skip list, inference
 * reproducing the validation accuracy exactly, error records and exit codes,
 * stdin input, --info, determinism, and Ctrl-C + --resume; aibox-import and
 * aibox-train --backbone on the pretrained MobileNets. */
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>
#include <cmocka.h>

#include "aibox.h"
#include "common/check.h"

static char bin[4096], dir[64];


/* 32x32 grey stripes: class 0 horizontal, class 1 vertical, random phase and noise. */
static void make_image(aibox_rng *r, int cls, const char *path)
{
    aibox_image img = {32, 32, 1, malloc(32 * 32)};
    assert_non_null(img.data);
    int phase = (int)aibox_rng_below(r, 4);
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++) {
            int on = ((cls ? x : y) + phase) / 4 % 2;
            int v = (on ? 190 : 60) + (int)aibox_rng_below(r, 40);
            img.data[y * 32 + x] = (uint8_t)v;
        }
    aibox_error e = {0};
    assert_int_equal(aibox_image_write_png(&img, path, &e), AIBOX_OK);
    aibox_image_free(&img);
}

static void write_bytes(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

/* snprintf into a path buffer, failing the test when it does not fit. */
#define PATHF(buf, ...) assert_true(snprintf(buf, sizeof buf, __VA_ARGS__) < (int)sizeof buf)

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16), p[2] = (unsigned char)(v >> 8),
    p[3] = (unsigned char)v;
}

/* The five bad files of the issue, in a class folder. */
static void make_bad_files(const char *cls_dir)
{
    char p[4400];
    PATHF(p, "%s/zero.jpg", cls_dir);
    write_bytes(p, "", 0);
    PATHF(p, "%s/text.png", cls_dir);
    write_bytes(p, "this is not an image\n", 21);
    /* a truncated JPEG: half of a real one */
    aibox_image img = {64, 64, 3, calloc(64 * 64 * 3, 1)};
    for (int i = 0; i < 64 * 64 * 3; i++) img.data[i] = (uint8_t)(i * 7);
    uint8_t *jpg;
    size_t len;
    aibox_error e = {0};
    assert_int_equal(aibox_image_encode_jpg(&img, 90, &jpg, &len, &e), AIBOX_OK);
    PATHF(p, "%s/truncated.jpg", cls_dir);
    write_bytes(p, jpg, len / 2);
    free(jpg);
    aibox_image_free(&img);
    /* a 1x1 image */
    aibox_image one = {1, 1, 1, malloc(1)};
    one.data[0] = 128;
    PATHF(p, "%s/tiny.png", cls_dir);
    assert_int_equal(aibox_image_write_png(&one, p, &e), AIBOX_OK);
    aibox_image_free(&one);
    /* a PNG whose header claims 100000 x 100000 (valid IHDR CRC, no data) */
    unsigned char png[8 + 25 + 12] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    unsigned char *h = png + 8;
    put32(h, 13);
    memcpy(h + 4, "IHDR", 4);
    put32(h + 8, 100000);
    put32(h + 12, 100000);
    h[16] = 8, h[17] = 0, h[18] = 0, h[19] = 0, h[20] = 0;
    put32(h + 21, (uint32_t)crc32(0, h + 4, 17));
    unsigned char *end = png + 8 + 25;
    put32(end, 0);
    memcpy(end + 4, "IEND", 4);
    put32(end + 8, (uint32_t)crc32(0, end + 4, 4));
    PATHF(p, "%s/huge.png", cls_dir);
    write_bytes(p, png, sizeof png);
}

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/aibox-cli-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    aibox_rng r;
    aibox_rng_seed(&r, 9);
    const char *splits[2] = {"train", "val"}, *classes[2] = {"horizontal", "vertical"};
    char p[4400];
    snprintf(p, sizeof p, "%s/data", dir);
    mkdir(p, 0777);
    for (int s = 0; s < 2; s++) {
        snprintf(p, sizeof p, "%s/data/%s", dir, splits[s]);
        mkdir(p, 0777);
        for (int c = 0; c < 2; c++) {
            snprintf(p, sizeof p, "%s/data/%s/%s", dir, splits[s], classes[c]);
            mkdir(p, 0777);
            for (int i = 0; i < (s ? 8 : 20); i++) {
                char f[4600];
                snprintf(f, sizeof f, "%s/img%02d.png", p, i);
                make_image(&r, c, f);
            }
        }
    }
    snprintf(p, sizeof p, "%s/data/train/horizontal", dir);
    make_bad_files(p);
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

#define TRAIN_ARGS "--model small --size 32 --epochs 4 --batch 8 --seed 3 --threads 2 --quiet --no-augment"

static double json_num(const char *json, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(json, k);
    return p ? atof(p + strlen(k)) : NAN;
}

static void test_train_and_infer(void **state)
{
    char out[65536];
    int rc = aibox_test_run(out, sizeof out, "%s/aibox-train %s/data -o %s/m.aibox " TRAIN_ARGS " 2>%s/train.log", bin, dir, dir,
                 dir);
    assert_int_equal(rc, 0);
    /* every bad file is named in the skip list */
    const char *bad[] = {"zero.jpg", "text.png", "truncated.jpg", "tiny.png", "huge.png"};
    for (int i = 0; i < 5; i++) assert_non_null(strstr(out, bad[i]));
    double val_acc = json_num(out, "val_acc");
    printf("# summary: %s", out);
    assert_true(aibox_test_json_lines(out));
    assert_true(val_acc > 0.5);
    /* inference on the validation folders reproduces the reported accuracy exactly */
    int right = 0, total = 0;
    const char *classes[2] = {"horizontal", "vertical"};
    for (int c = 0; c < 2; c++) {
        rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/m.aibox %s/data/val/%s", bin, dir, dir, classes[c]);
        assert_true(rc == 0 || rc == 1);
        assert_true(aibox_test_json_lines(out));
        for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
            char want[64];
            snprintf(want, sizeof want, "\"label\":\"%s\"", classes[c]);
            right += strstr(line, want) != NULL;
            total++;
        }
    }
    assert_int_equal(total, 16);
    printf("# aibox-infer: %d/%d = %.6f, aibox-train reported %.6f\n", right, total, (double)right / total, val_acc);
    assert_true(fabs((double)right / total - val_acc) < 1e-6);
}

static void test_infer_errors_and_codes(void **state)
{
    char out[65536];
    const char *bad[] = {"zero.jpg", "text.png", "truncated.jpg", "tiny.png", "huge.png"};
    for (int i = 0; i < 5; i++) {
        int rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/m.aibox %s/data/train/horizontal/%s 2>/dev/null", bin, dir,
                     dir, bad[i]);
        assert_int_equal(rc, 2);
        assert_non_null(strstr(out, "\"error\":"));
        assert_non_null(strstr(out, bad[i]));
        assert_true(aibox_test_json_lines(out));
    }
    /* a bad file among good ones: the others are still classified */
    int rc = aibox_test_run(out, sizeof out,
                 "%s/aibox-infer -m %s/m.aibox %s/data/val/vertical/img00.png %s/data/train/horizontal/zero.jpg "
                 "%s/data/val/vertical/img01.png 2>/dev/null",
                 bin, dir, dir, dir, dir);
    assert_int_equal(rc, 2);
    int lines = 0;
    for (char *p = out; (p = strchr(p, '\n')); p++) lines++;
    assert_int_equal(lines, 3);
    /* verdicts: with the right ok class everything is OK (0), with the other NG (1) */
    rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/m.aibox --ok-class horizontal,vertical %s/data/val/vertical", bin,
             dir, dir);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "\"verdict\":\"OK\""));
    rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/m.aibox --ok-class horizontal %s/data/val/vertical/img00.png", bin,
             dir, dir);
    assert_true(rc == 1 || strstr(out, "\"label\":\"horizontal\""));
    rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/m.aibox --min-conf 1 %s/data/val/vertical/img00.png", bin, dir,
             dir);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "uncertain"));
    /* stdin: one image's bytes, and a list of paths */
    rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/m.aibox - < %s/data/val/vertical/img02.png", bin, dir, dir);
    assert_true(rc <= 1);
    assert_non_null(strstr(out, "\"file\":\"stdin\""));
    rc = aibox_test_run(out, sizeof out, "ls %s/data/val/horizontal/*.png | %s/aibox-infer -m %s/m.aibox --stdin-list --format csv",
             dir, bin, dir);
    assert_true(rc <= 1);
    assert_non_null(strstr(out, "file,label,confidence,verdict,ms,error"));
    /* --info: the model's metadata */
    rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/m.aibox --info", bin, dir);
    assert_int_equal(rc, 0);
    assert_true(aibox_test_json_lines(out));
    assert_non_null(strstr(out, "\"aibox.class_names\":[\"horizontal\",\"vertical\"]"));
    assert_non_null(strstr(out, "\"aibox.input.resize\":\"area\""));
    /* usage errors and an unreadable model */
    assert_int_equal(aibox_test_run(NULL, 0, "%s/aibox-infer --bogus 2>/dev/null", bin), 2);
    assert_int_equal(aibox_test_run(NULL, 0, "%s/aibox-infer -m %s/m.aibox 2>/dev/null", bin, dir), 2);
    assert_int_equal(aibox_test_run(NULL, 0, "%s/aibox-infer -m %s/data/val/vertical/img00.png x.png 2>/dev/null", bin, dir), 3);
    assert_int_equal(aibox_test_run(NULL, 0, "%s/aibox-train 2>/dev/null", bin), 2);
    assert_int_equal(aibox_test_run(NULL, 0, "%s/aibox-train %s/data -o %s/x.aibox --epochs zero 2>/dev/null", bin, dir, dir), 2);
    assert_int_equal(aibox_test_run(NULL, 0, "%s/aibox-train %s/data -o %s/x.aibox --augment sparkle 2>/dev/null", bin, dir, dir), 2);
    assert_int_equal(aibox_test_run(NULL, 0, "%s/aibox-train %s/data -o %s/x.aibox --strict 2>/dev/null", bin, dir, dir), 2);
}

/* Nothing non-finite reaches a verdict or the JSON: a model whose finite
 * weights overflow on real images gives error records and exit 2 (it was
 * "confidence":-nan, exit 0); a model with an Inf weight is refused (exit 3);
 * a model without class names takes the labels it prints, "0" and "1", as
 * --ok-class (it was refused). */
static void test_nonfinite_and_unnamed_classes(void **state)
{
    char out[65536], p[4400];
    aibox_model *m = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_model_create(&m, 1, 32, 32, &e), AIBOX_OK);
    aibox_dense(m, aibox_flatten(m, 0), 2, 1);
    assert_int_equal(aibox_model_finish(m, 1, &e), AIBOX_OK);
    size_t n = 0;
    float *w = aibox_model_node_param(m, 2, 0, &n);
    for (size_t i = 0; i < n; i++) w[i] = i < n / 2 ? 3e38f : -3e38f; /* finite, but the sums are not */
    snprintf(p, sizeof p, "%s/overflow.aibox", dir);
    assert_int_equal(aibox_model_save(m, p, &e), AIBOX_OK);
    int rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s --min-conf 0.9 --ok-class 0 %s/data/val/vertical 2>/dev/null",
                            bin, p, dir);
    printf("# overflowing model: exit %d, %.160s\n", rc, out);
    assert_int_equal(rc, 2);
    assert_true(aibox_test_json_lines(out));
    assert_non_null(strstr(out, "not a finite number"));
    assert_null(strstr(out, "\"verdict\""));
    /* an Inf weight: refused at load */
    w[0] = INFINITY;
    snprintf(p, sizeof p, "%s/inf.aibox", dir);
    assert_int_not_equal(aibox_model_save(m, p, &e), AIBOX_OK); /* the library will not write it */
    /* unnamed classes: the printed labels are accepted */
    for (size_t i = 0; i < n; i++) w[i] = 0.001f * (float)(i % 7);
    snprintf(p, sizeof p, "%s/unnamed.aibox", dir);
    assert_int_equal(aibox_model_save(m, p, &e), AIBOX_OK);
    aibox_model_free(&m);
    rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s --ok-class 0,1 %s/data/val/vertical/img00.png 2>&1", bin, p, dir);
    printf("# unnamed classes, --ok-class 0,1: exit %d, %s", rc, out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "\"verdict\":\"OK\""));
    rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s --ok-class 2 %s/data/val/vertical/img00.png 2>&1", bin, p, dir);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "not one of the model's classes (0, 1)"));
}

static int load_params(const char *path, float **p, size_t *n)
{
    aibox_model *m = NULL;
    aibox_error e = {0};
    if (aibox_model_load(&m, path, &e)) return 0;
    size_t total = 0;
    for (int i = 1; i < aibox_model_node_count(m); i++)
        for (int k = 0; k < 2; k++) {
            size_t c;
            aibox_model_node_param(m, i, k, &c);
            total += c;
        }
    *p = malloc(total * sizeof(float));
    *n = 0;
    for (int i = 1; i < aibox_model_node_count(m); i++)
        for (int k = 0; k < 2; k++) {
            size_t c;
            float *q = aibox_model_node_param(m, i, k, &c);
            if (q) memcpy(*p + *n, q, c * sizeof(float)), *n += c;
        }
    aibox_model_free(&m);
    return 1;
}

/* Same data, seed and threads: the same model; Ctrl-C and --resume: the same model too. */
static void test_determinism_and_resume(void **state)
{
    char out[65536];
    assert_int_equal(aibox_test_run(out, sizeof out, "%s/aibox-train %s/data -o %s/m2.aibox " TRAIN_ARGS " 2>/dev/null", bin, dir,
                         dir),
                     0);
    float *a, *b, *c;
    size_t na, nb, nc;
    char p[4400];
    snprintf(p, sizeof p, "%s/m.aibox", dir);
    assert_true(load_params(p, &a, &na));
    snprintf(p, sizeof p, "%s/m2.aibox", dir);
    assert_true(load_params(p, &b, &nb));
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na * sizeof(float));
    /* interrupt a longer run with SIGINT, then resume it */
    char cmd[16384];
    snprintf(cmd, sizeof cmd,
             "%s/aibox-train %s/data -o %s/m3.aibox " TRAIN_ARGS " --epochs 200 2>%s/int.log & pid=$!; "
             "sleep 0.7; kill -INT $pid; wait $pid; echo $?",
             bin, dir, dir, dir);
    assert_int_equal(aibox_test_run(out, sizeof out, "%s", cmd), 0);
    int rc = atoi(out);
    printf("# interrupted run exited %d\n", rc);
    if (rc == 0) {
        printf("# the 200-epoch run finished within 0.7 s: interruption not exercised\n");
    } else {
        assert_int_equal(rc, 130);
        assert_int_equal(aibox_test_run(NULL, 0, "grep -q 'last.aibox' %s/int.log", dir), 0);
        assert_int_equal(aibox_test_run(out, sizeof out,
                             "%s/aibox-train %s/data -o %s/m3.aibox " TRAIN_ARGS
                             " --epochs 200 --resume %s/m3.train/last.aibox 2>/dev/null",
                             bin, dir, dir, dir),
                         0);
        assert_int_equal(aibox_test_run(out, sizeof out, "%s/aibox-train %s/data -o %s/m4.aibox " TRAIN_ARGS " --epochs 200 2>/dev/null",
                             bin, dir, dir),
                         0);
        snprintf(p, sizeof p, "%s/m3.aibox", dir);
        assert_true(load_params(p, &c, &nc));
        free(b);
        snprintf(p, sizeof p, "%s/m4.aibox", dir);
        assert_true(load_params(p, &b, &nb));
        assert_int_equal(nc, nb);
        assert_memory_equal(c, b, nc * sizeof(float));
        free(c);
    }
    free(a);
    free(b);
}

/* The pretrained MobileNets (../shared/models/tflite), or NULL. */
static const char *models_dir(void)
{
    const char *env = getenv("AIBOX_MODELS");
    const char *cands[2] = {env, "../shared/models/tflite"};
    static char found[4096];
    for (int i = 0; i < 2; i++) {
        char probe[4200];
        if (!cands[i]) continue;
        snprintf(probe, sizeof probe, "%s/mobilenet_v1_0.25_224_quant.tflite", cands[i]);
        if (access(probe, R_OK) == 0) {
            snprintf(found, sizeof found, "%s", cands[i]);
            return found;
        }
    }
    return NULL;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; (s = strchr(s, '\n')); s++) n++;
    return n;
}

/* aibox-import turns the quantised MobileNet into an .aibox model; aibox-infer
 * then reproduces the published burger.jpg result (934 cheeseburger, 0.96),
 * which also shows that a softmax output gets no second softmax. */
static void test_import_and_infer(void **state)
{
    const char *md = models_dir();
    if (!md) {
        print_message("models not found ($AIBOX_MODELS or ../shared/models/tflite)\n");
        skip();
    }
    char out[65536], p[4400];
    int rc = aibox_test_run(out, sizeof out, "%s/aibox-import %s/mobilenet_v1_0.25_224_quant.tflite --labels %s/imagenet_labels.txt "
                 "-o %s/mq.aibox 2>%s/import.log", bin, md, md, dir, dir);
    assert_int_equal(rc, 0);
    printf("# %s", out);
    assert_non_null(strstr(out, "\"classes\":1001"));
    assert_non_null(strstr(out, "\"labels\":true"));
    assert_non_null(strstr(out, "\"output\":\"probabilities\""));
    assert_non_null(strstr(out, "\"resize\":\"bilinear\""));
    rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/mq.aibox --threads 2 %s/burger.jpg", bin, dir, md);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "\"label\":\"cheeseburger\""));
    double conf = json_num(out, "confidence");
    printf("# burger.jpg: cheeseburger %.4f\n", conf);
    assert_true(conf > 0.94 && conf < 0.98);
    rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/mq.aibox --info", bin, dir);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "\"aibox.input.resize\":\"bilinear\""));
    /* the Task Library's half-pixel resize gives upstream's 0.96 +- 0.01 */
    rc = aibox_test_run(out, sizeof out, "%s/aibox-import %s/mobilenet_v1_0.25_224_quant.tflite --labels %s/imagenet_labels.txt "
             "--resize bilinear_center -o %s/mqc.aibox --quiet", bin, md, md, dir);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "\"resize\":\"bilinear_center\""));
    rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/mqc.aibox %s/burger.jpg", bin, dir, md);
    assert_int_equal(rc, 0);
    conf = json_num(out, "confidence");
    printf("# burger.jpg, bilinear_center: cheeseburger %.4f\n", conf);
    assert_true(conf >= 0.95 && conf <= 0.97);
    assert_int_equal(aibox_test_run(NULL, 0, "%s/aibox-import %s/burger.jpg --resize cubic -o %s/x.aibox 2>/dev/null", bin, md, dir),
                     2);
    /* errors: not a model (3), labels that do not fit (2), usage (2); nothing written */
    PATHF(p, "%s/bad.aibox", dir);
    rc = aibox_test_run(out, sizeof out, "%s/aibox-import %s/burger.jpg -o %s 2>&1", bin, md, p);
    assert_int_equal(rc, 3);
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "burger.jpg"));
    assert_int_equal(access(p, F_OK), -1);
    rc = aibox_test_run(out, sizeof out, "%s/aibox-import %s/mobilenet_v1_0.25_224_quant.tflite --labels %s/data/val/vertical/img00.png "
             "-o %s 2>&1", bin, md, dir, p);
    assert_int_equal(rc, 2);
    assert_int_equal(access(p, F_OK), -1);
    assert_int_equal(aibox_test_run(NULL, 0, "%s/aibox-import %s/mobilenet_v1_0.25_224_quant.tflite 2>/dev/null", bin, md), 2);
    assert_int_equal(aibox_test_run(NULL, 0, "%s/aibox-import --bogus 2>/dev/null", bin), 2);
    assert_int_equal(aibox_test_run(NULL, 0, "%s/aibox-import %s/nonexistent.tflite -o %s 2>/dev/null", bin, dir, p), 3);
}

/* aibox-train --backbone: a frozen MobileNet with a new head on the grey
 * stripes (made RGB at 224x224 by the stored preprocessing), which
 * aibox-infer reads and scores exactly as training reported; a trained
 * from-scratch trunk cut at stride 16; bad backbones refused up front. */
static void test_backbone_finetune(void **state)
{
    const char *md = models_dir();
    if (!md) {
        print_message("models not found ($AIBOX_MODELS or ../shared/models/tflite)\n");
        skip();
    }
    char out[65536], p[4400];
    int rc = aibox_test_run(out, sizeof out, "%s/aibox-train %s/data -o %s/ft.aibox --backbone %s/mobilenet_v1_0.25_224_1_default_1.tflite "
                 "--epochs 2 --batch 8 --threads 2 --quiet --no-augment 2>/dev/null", bin, dir, dir, md);
    assert_int_equal(rc, 0);
    printf("# %s", out);
    assert_non_null(strstr(out, "\"frozen\":true"));
    assert_non_null(strstr(out, "\"cached_features\":true"));
    assert_non_null(strstr(out, "\"cut\":55")); /* the 7x7 average pool */
    double val_acc = json_num(out, "val_acc");
    rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/ft.aibox --info", bin, dir);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "\"input\":[3,224,224]"));
    assert_non_null(strstr(out, "\"aibox.class_names\":[\"horizontal\",\"vertical\"]"));
    assert_non_null(strstr(out, "\"aibox.input.resize\":\"bilinear\""));
    assert_non_null(strstr(out, "\"aibox.input.mean\":[0.5,0.5,0.5]"));
    int right = 0, total = 0;
    const char *classes[2] = {"horizontal", "vertical"};
    for (int c = 0; c < 2; c++) {
        rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/ft.aibox --threads 2 %s/data/val/%s", bin, dir, dir, classes[c]);
        assert_true(rc == 0 || rc == 1);
        char want[64];
        snprintf(want, sizeof want, "\"label\":\"%s\"", classes[c]);
        for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) right += strstr(line, want) != NULL, total++;
    }
    assert_int_equal(total, 16);
    printf("# frozen backbone: aibox-infer %d/%d, aibox-train reported %.6f\n", right, total, val_acc);
    assert_true(fabs((double)right / total - val_acc) < 1e-6);

    /* the same architecture drawn afresh, trained whole, cut at stride 16, with augmentation */
    rc = aibox_test_run(out, sizeof out, "%s/aibox-train %s/data -o %s/fs.aibox --backbone %s/mobilenet_v1_0.25_224_1_default_1.tflite "
             "--from-scratch --stride 16 --augment flip --epochs 1 --batch 8 --threads 2 --quiet 2>/dev/null", bin, dir, dir, md);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "\"frozen\":false"));
    assert_non_null(strstr(out, "\"init\":\"random\""));
    assert_non_null(strstr(out, "\"cached_features\":false"));
    rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/fs.aibox %s/data/val/vertical/img00.png", bin, dir, dir);
    assert_true(rc == 0 || rc == 1);
    assert_non_null(strstr(out, "\"label\":"));

    /* bad backbones: one line naming the file, exit 2, no model and no output folder */
    const char *bad[2] = {"data/val/vertical/img00.png", "nonexistent.tflite"};
    for (int i = 0; i < 2; i++) {
        rc = aibox_test_run(out, sizeof out, "%s/aibox-train %s/data -o %s/nb.aibox --backbone %s/%s --quiet 2>&1", bin, dir, dir,
                 dir, bad[i]);
        assert_int_equal(rc, 2);
        assert_int_equal(count_lines(out), 1);
        assert_non_null(strstr(out, bad[i]));
        PATHF(p, "%s/nb.aibox", dir);
        assert_int_equal(access(p, F_OK), -1);
        PATHF(p, "%s/nb.train", dir);
        assert_int_equal(access(p, F_OK), -1);
    }
    assert_int_equal(aibox_test_run(NULL, 0, "%s/aibox-train %s/data -o %s/nb.aibox --freeze 2>/dev/null", bin, dir, dir), 2);
    assert_int_equal(aibox_test_run(NULL, 0, "%s/aibox-train %s/data -o %s/nb.aibox --backbone %s/ft.aibox --size 64 2>/dev/null",
                         bin, dir, dir, dir),
                     2);
    assert_int_equal(aibox_test_run(NULL, 0, "%s/aibox-train %s/data -o %s/nb.aibox --backbone %s/ft.aibox --tap 999 2>/dev/null",
                         bin, dir, dir, dir),
                     2);
}

/* Issue 16, item 3: a BMP and a GIF cut short are error records naming the
 * truncation (exit 2), where the whole files are classified. */
static void test_truncated_bmp_gif(void **state)
{
    /* 32x32 8-bit grey BMP: 256-entry palette, rows bottom-up */
    unsigned char bmp[14 + 40 + 1024 + 32 * 32] = {'B', 'M'};
    uint32_t head[13] = {sizeof bmp, 0, 14 + 40 + 1024, 40, 32, 32, 1 | 8u << 16, 0, 32 * 32, 2835, 2835, 256, 0};
    for (int i = 0; i < 13; i++)
        for (int k = 0; k < 4; k++) bmp[2 + 4 * i + k] = (unsigned char)(head[i] >> 8 * k);
    for (int i = 0; i < 256; i++) bmp[54 + 4 * i] = bmp[55 + 4 * i] = bmp[56 + 4 * i] = (unsigned char)i;
    for (int i = 0; i < 32 * 32; i++) bmp[1078 + i] = (unsigned char)((i % 32 / 4 % 2) ? 190 : 60);
    /* 32x32 GIF, 256 greys, LZW at 9 bits with a clear code before every pixel */
    unsigned char gif[4096] = "GIF89a\x20\0\x20\0\xF7\0\0";
    size_t n = 13;
    for (int i = 0; i < 256; i++) gif[n++] = (unsigned char)i, gif[n++] = (unsigned char)i, gif[n++] = (unsigned char)i;
    const unsigned char desc[11] = {0x2C, 0, 0, 0, 0, 32, 0, 32, 0, 0, 8};
    memcpy(gif + n, desc, sizeof desc);
    n += sizeof desc;
    unsigned char codes[2 * 32 * 32 * 9 / 8 + 4] = {0};
    size_t bits = 0;
    for (int i = 0; i <= 32 * 32; i++) {
        unsigned pair[2] = {256, i < 32 * 32 ? ((i % 32 / 4 % 2) ? 190u : 60u) : 257u}; /* clear, pixel; last: clear, end */
        for (int k = 0; k < 2; k++, bits += 9)
            for (int b = 0; b < 9; b++) codes[(bits + b) / 8] |= (unsigned char)((pair[k] >> b & 1) << (bits + b) % 8);
    }
    size_t ncodes = (bits + 7) / 8;
    assert_true(n + ncodes + ncodes / 255 + 3 <= sizeof gif);
    for (size_t at = 0; at < ncodes; at += 255) {
        size_t k = ncodes - at < 255 ? ncodes - at : 255;
        gif[n++] = (unsigned char)k;
        memcpy(gif + n, codes + at, k);
        n += k;
    }
    gif[n++] = 0;
    gif[n++] = 0x3B;
    char p[4400], out[65536];
    const struct {
        const char *name;
        const unsigned char *bytes;
        size_t len;
        const char *why;
    } files[] = {{"whole.bmp", bmp, sizeof bmp, NULL},  {"cut33.bmp", bmp, 33, "truncated BMP"},
                 {"cut.bmp", bmp, sizeof bmp / 2, "truncated BMP"}, {"whole.gif", gif, n, NULL},
                 {"cut.gif", gif, n / 2, "truncated GIF"}, {"notrailer.gif", gif, n - 1, "truncated GIF"}};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        PATHF(p, "%s/%s", dir, files[i].name);
        write_bytes(p, files[i].bytes, files[i].len);
        int rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/m.aibox %s 2>/dev/null", bin, dir, p);
        printf("# %s (%zu bytes): exit %d\n", files[i].name, files[i].len, rc);
        if (!files[i].why) {
            assert_true(rc == 0 || rc == 1);
            assert_non_null(strstr(out, "\"label\":"));
            continue;
        }
        assert_int_equal(rc, 2);
        assert_non_null(strstr(out, "\"error\":"));
        assert_non_null(strstr(out, files[i].name));
        assert_non_null(strstr(out, files[i].why));
    }
}

int main(int argc, char **argv)
{
    /* tools live in <build>/bin, this test in <build>/tests/tools */
    aibox_test_tools_dir(argv[0], bin, sizeof bin);
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/aibox-train", bin);
    if (access(probe, X_OK) != 0) {
        fprintf(stderr, "test_cli: %s not built\n", probe);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_and_infer),
        cmocka_unit_test(test_infer_errors_and_codes),
        cmocka_unit_test(test_nonfinite_and_unnamed_classes),
        cmocka_unit_test(test_determinism_and_resume),
        cmocka_unit_test(test_import_and_infer),
        cmocka_unit_test(test_backbone_finetune),
        cmocka_unit_test(test_truncated_bmp_gif),
    };
    return cmocka_run_group_tests_name("tools", tests, setup, teardown);
}
