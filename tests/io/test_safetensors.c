/* safetensors reader and torchvision ResNet importer: hand-built files for every
 * structural rule (valid, every truncation, header length beyond the file,
 * offsets out of range, shape/offset mismatches, bad JSON, unsupported
 * dtypes, bit flips), the importer's refusals by tensor name, and parity
 * with PyTorch on a random ResNet-18 and Wide ResNet-50-2, the latter
 * recognised from its tensors (tests/io/torch_parity.py, run with
 * Debian's /usr/bin/python3; skipped with a message without torch). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "aibox.h"
#include "common/check.h"
#include "io/safetensors.h"

static char g_dir[64];

/* ------------------------------------------------------------------ helpers */
/* A file image: 8-byte LE length, the header text, then data bytes. */
static unsigned char *build(const char *header, const void *data, size_t data_len, size_t *len)
{
    size_t n = strlen(header);
    unsigned char *b = malloc(8 + n + data_len + 1);
    assert_non_null(b);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(b + 8, header, n);
    if (data_len) memcpy(b + 8 + n, data, data_len);
    *len = 8 + n + data_len;
    return b;
}

/* Parses header+data; expects a FORMAT refusal whose message contains want. */
static void expect_refusal(const char *header, const void *data, size_t data_len, const char *want)
{
    size_t len;
    unsigned char *b = build(header, data, data_len, &len);
    aibox_st_file *f = (aibox_st_file *)1;
    aibox_error err = {0};
    aibox_status s = aibox_st_parse(b, len, "bad.safetensors", &f, &err);
    if (s != AIBOX_E_FORMAT || !strstr(err.msg, "bad.safetensors") || (want && !strstr(err.msg, want)))
        fail_msg("header %s: status %d, message '%s' (wanted FORMAT with '%s')", header, (int)s, err.msg,
                 want ? want : "");
    assert_null(f);
    free(b);
}

/* The valid sample: a F32 2x3, b F16 [2], c BF16 scalar, n I64 scalar. */
static const char VALID_HDR[] =
    "{\"__metadata__\":{\"format\":\"pt\"},"
    "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
    "\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[24,28]},"
    "\"c\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[28,30]},"
    "\"n\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[30,38]}}  ";

static size_t valid_data(unsigned char *d)
{
    static const float a[6] = {1.0f, -2.5f, 3.25f, 0.0f, 1e-3f, -7.0f};
    for (int i = 0; i < 6; i++) {
        uint32_t u;
        memcpy(&u, &a[i], 4);
        for (int k = 0; k < 4; k++) d[4 * i + k] = (unsigned char)(u >> (8 * k));
    }
    d[24] = 0x00, d[25] = 0x3c; /* F16 1.0 */
    d[26] = 0x00, d[27] = 0xc0; /* F16 -2.0 */
    d[28] = 0x40, d[29] = 0x40; /* BF16 3.0 */
    for (int k = 0; k < 8; k++) d[30 + k] = (unsigned char)(k == 0 ? 42 : 0);
    return 38;
}

static void write_file(const char *path, const void *b, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(b, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

/* A tensor's values as float32 (malloc'd; the tensor must have a float dtype). */
static float *floats(const aibox_st_tensor *t)
{
    float *x = malloc((t->count ? t->count : 1) * sizeof *x);
    assert_non_null(x);
    assert_int_equal(aibox_st_to_float(t, x), 1);
    return x;
}

/* ------------------------------------------------------------------ reader */
static void test_valid(void **state)
{
    (void)state;
    unsigned char d[64];
    size_t dl = valid_data(d), len;
    unsigned char *b = build(VALID_HDR, d, dl, &len);
    aibox_st_file *f = NULL;
    aibox_error err = {0};
    assert_int_equal(aibox_st_parse(b, len, "ok.safetensors", &f, &err), AIBOX_OK);
    assert_int_equal(f->n, 4);
    int a = aibox_st_find(f, "a"), bb = aibox_st_find(f, "b"), c = aibox_st_find(f, "c"), n = aibox_st_find(f, "n");
    assert_true(a >= 0 && bb >= 0 && c >= 0 && n >= 0);
    assert_int_equal(aibox_st_find(f, "__metadata__"), -1);
    assert_int_equal(f->t[a].ndim, 2);
    assert_int_equal(f->t[a].shape[0], 2);
    assert_int_equal(f->t[a].shape[1], 3);
    assert_int_equal(f->t[a].count, 6);
    float *va = floats(&f->t[a]), *vb = floats(&f->t[bb]), *vc = floats(&f->t[c]);
    assert_true(va[1] == -2.5f && va[4] == 1e-3f && va[5] == -7.0f);
    assert_true(vb[0] == 1.0f && vb[1] == -2.0f);
    assert_int_equal(f->t[c].ndim, 0);
    assert_int_equal(f->t[c].count, 1);
    assert_true(vc[0] == 3.0f);
    free(va), free(vb), free(vc);
    assert_string_equal(f->t[n].dtype, "I64");
    assert_int_equal(aibox_st_to_float(&f->t[n], NULL), 0); /* an integer: never converted */
    aibox_st_free(&f);
    assert_null(f);

    /* through a file, too */
    char path[128];
    snprintf(path, sizeof path, "%s/ok.safetensors", g_dir);
    write_file(path, b, len);
    assert_int_equal(aibox_st_read(path, &f, &err), AIBOX_OK);
    assert_int_equal(f->n, 4);
    aibox_st_free(&f);
    free(b);
}

static void test_f16_values(void **state)
{
    (void)state;
    /* subnormal, max normal, -0, +inf */
    unsigned char d[8] = {0x01, 0x00, 0xff, 0x7b, 0x00, 0x80, 0x00, 0x7c};
    size_t len;
    unsigned char *b = build("{\"h\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]}}", d, 8, &len);
    aibox_st_file *f = NULL;
    assert_int_equal(aibox_st_parse(b, len, "h", &f, NULL), AIBOX_OK);
    float *v = floats(&f->t[0]);
    assert_true(v[0] == ldexpf(1.0f, -24));
    assert_true(v[1] == 65504.0f);
    assert_true(v[2] == 0.0f && signbit(v[2]));
    assert_true(isinf(v[3]) && v[3] > 0);
    free(v);
    aibox_st_free(&f);
    free(b);
}

static void test_truncated_everywhere(void **state)
{
    (void)state;
    unsigned char d[64];
    size_t dl = valid_data(d), len;
    unsigned char *b = build(VALID_HDR, d, dl, &len);
    for (size_t cut = 0; cut < len; cut++) {
        unsigned char *c = malloc(cut ? cut : 1); /* exact size, so ASan sees any overread */
        assert_non_null(c);
        memcpy(c, b, cut);
        aibox_st_file *f = NULL;
        aibox_error err = {0};
        aibox_status s = aibox_st_parse(c, cut, "cut.safetensors", &f, &err);
        if (s != AIBOX_E_FORMAT || !strstr(err.msg, "cut.safetensors"))
            fail_msg("cut at %zu: status %d '%s'", cut, (int)s, err.msg);
        assert_null(f);
        free(c);
    }
    free(b);
}

static void test_header_length_beyond_file(void **state)
{
    (void)state;
    unsigned char d[64];
    size_t dl = valid_data(d), len;
    unsigned char *b = build(VALID_HDR, d, dl, &len);
    static const uint64_t lens[] = {0, 1, 0xffffffffffffffffull, 1ull << 40, 0};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        uint64_t n = i == 4 ? (uint64_t)(len - 8 + 1) : lens[i];
        for (int k = 0; k < 8; k++) b[k] = (unsigned char)(n >> (8 * k));
        aibox_st_file *f = NULL;
        aibox_error err = {0};
        assert_int_equal(aibox_st_parse(b, len, "long.safetensors", &f, &err), AIBOX_E_FORMAT);
        assert_non_null(strstr(err.msg, "long.safetensors"));
        assert_null(f);
    }
    free(b);
}

static void test_offsets_and_shapes(void **state)
{
    (void)state;
    unsigned char d[32] = {0};
    expect_refusal("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,1000]}}", d, 8, "'w'");
    expect_refusal("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", d, 8, "outside");
    expect_refusal("{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[9,9]}}", d, 8, "outside");
    expect_refusal("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", d, 8, "outside");
    expect_refusal("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,-8]}}", d, 8, "data_offsets");
    expect_refusal("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", d, 8, "data_offsets");
    expect_refusal("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", d, 8, "data_offsets");
    expect_refusal("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0.5,8]}}", d, 8, "data_offsets");
    expect_refusal("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[\"0\",8]}}", d, 8, "data_offsets");
    expect_refusal("{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", d, 8, "data_offsets");
    /* shape against the byte span */
    expect_refusal("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", d, 8, "span");
    expect_refusal("{\"w\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,8]}}", d, 8, "'w'");
    expect_refusal("{\"w\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,0]}}", d, 8, "span");
    expect_refusal("{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", d, 8, "shape");
    expect_refusal("{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", d, 8, "shape");
    expect_refusal("{\"w\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,8]}}", d, 8, "shape");
    expect_refusal("{\"w\":{\"dtype\":\"F32\",\"shape\":[2147483647,2147483647,2147483647],\"data_offsets\":[0,8]}}",
                   d, 8, "absurd");
    expect_refusal("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", d, 8,
                   "dimensions");
    expect_refusal("{\"w\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", d, 8, "shape");
    expect_refusal("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", d, 8, "shape");
    /* a later entry fails after an earlier one was converted (no leak) */
    expect_refusal("{\"v\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"w\":{\"dtype\":\"F32\",\"shape\":[9],\"data_offsets\":[0,8]}}",
                   d, 8, "'w'");
    expect_refusal("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                   d, 8, "twice");
}

static void test_bad_json_and_dtypes(void **state)
{
    (void)state;
    unsigned char d[8] = {0};
    expect_refusal("{ ", d, 8, "JSON");
    expect_refusal("{", d, 8, "header length");
    expect_refusal("{\"w\":", d, 8, "JSON");
    expect_refusal("  ", d, 8, "JSON");
    expect_refusal("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}xx", d, 8, "padding");
    expect_refusal("[1,2]", d, 8, "object");
    expect_refusal("{\"w\":3}", d, 8, "'w'");
    expect_refusal("{\"\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", d, 8, "empty name");
    expect_refusal("{\"__metadata__\":[1]}", d, 8, "__metadata__");
    expect_refusal("{\"__metadata__\":{\"k\":1}}", d, 8, "__metadata__");
    expect_refusal("{\"w\":{\"dtype\":\"Q4_0\",\"shape\":[2],\"data_offsets\":[0,8]}}", d, 8, "unsupported dtype");
    expect_refusal("{\"w\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", d, 8, "unsupported dtype");
    expect_refusal("{\"w\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}", d, 8, "dtype");
    expect_refusal("{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", d, 8, "dtype");
    /* an empty header object is a valid (empty) file */
    size_t len;
    unsigned char *b = build("{}", NULL, 0, &len);
    aibox_st_file *f = NULL;
    assert_int_equal(aibox_st_parse(b, len, "empty", &f, NULL), AIBOX_OK);
    assert_int_equal(f->n, 0);
    aibox_st_free(&f);
    free(b);
}

/* Every single-bit flip of the valid file: accepted or refused, never a crash. */
static void test_bit_flips(void **state)
{
    (void)state;
    unsigned char d[64];
    size_t dl = valid_data(d), len;
    unsigned char *b = build(VALID_HDR, d, dl, &len);
    int refused = 0;
    for (size_t i = 0; i < len; i++)
        for (int bit = 0; bit < 8; bit++) {
            unsigned char *c = malloc(len);
            assert_non_null(c);
            memcpy(c, b, len);
            c[i] ^= (unsigned char)(1u << bit);
            aibox_st_file *f = NULL;
            aibox_error err = {0};
            aibox_status s = aibox_st_parse(c, len, "flip", &f, &err);
            assert_true(s == AIBOX_OK || s == AIBOX_E_FORMAT);
            if (s) refused++, assert_null(f), assert_true(err.msg[0] != 0);
            aibox_st_free(&f);
            free(c);
        }
    assert_true(refused > 0);
    free(b);
}

static void test_import_refusals_small(void **state)
{
    (void)state;
    unsigned char d[64];
    size_t dl = valid_data(d), len;
    unsigned char *b = build(VALID_HDR, d, dl, &len);
    char path[128];
    snprintf(path, sizeof path, "%s/small.safetensors", g_dir);
    write_file(path, b, len);
    aibox_model *m = (aibox_model *)1;
    aibox_error err = {0};
    assert_int_equal(aibox_import_safetensors(&m, path, "resnet18", 0, &err), AIBOX_E_FORMAT);
    assert_null(m);
    assert_non_null(strstr(err.msg, "fc.weight"));
    assert_non_null(strstr(err.msg, "small.safetensors"));
    assert_int_equal(aibox_import_safetensors(&m, path, "resnet101", 0, &err), AIBOX_E_UNSUPPORTED);
    assert_int_equal(aibox_import_safetensors(&m, "/nonexistent/x.safetensors", "resnet18", 0, &err), AIBOX_E_NOTFOUND);
    /* Bottleneck files that are no known architecture (arch NULL) */
    static unsigned char zeros[96 * 64];
    unsigned char *h = build("{\"layer1.0.conv3.weight\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                             "\"layer1.0.conv1.weight\":{\"dtype\":\"U8\",\"shape\":[96,64,1,1],"
                             "\"data_offsets\":[0,6144]}}",
                             zeros, sizeof zeros, &len);
    assert_int_equal(aibox_st_import_buffer(&m, h, len, "odd.safetensors", NULL, 0, &err), AIBOX_E_UNSUPPORTED);
    assert_null(m);
    assert_non_null(strstr(err.msg, "odd.safetensors"));
    assert_non_null(strstr(err.msg, "96 output channels"));
    free(h);
    h = build("{\"layer1.0.conv3.weight\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", zeros, 1,
              &len);
    assert_int_equal(aibox_st_import_buffer(&m, h, len, "odd.safetensors", NULL, 0, &err), AIBOX_E_FORMAT);
    assert_non_null(strstr(err.msg, "'layer1.0.conv1.weight'"));
    free(h);
    /* truncated on disk: the message names the file */
    write_file(path, b, len - 3);
    assert_int_equal(aibox_import_safetensors(&m, path, "resnet18", 0, &err), AIBOX_E_FORMAT);
    assert_non_null(strstr(err.msg, "small.safetensors"));
    unlink(path);
    free(b);
}

/* ------------------------------------------------------------------ PyTorch parity */
/* Rewrites src's header through edit() into dst (same data area). */
static void rewrite(const char *src, const char *dst, void (*edit)(cJSON *root))
{
    size_t len;
    unsigned char *b = aibox_test_slurp(src, &len);
    assert_non_null(b);
    uint64_t n = 0;
    for (int k = 7; k >= 0; k--) n = (n << 8) | b[k];
    cJSON *root = cJSON_ParseWithLength((const char *)b + 8, (size_t)n);
    assert_non_null(root);
    edit(root);
    char *h = cJSON_PrintUnformatted(root);
    assert_non_null(h);
    size_t hn = strlen(h);
    FILE *fp = fopen(dst, "wb");
    assert_non_null(fp);
    for (int k = 0; k < 8; k++) fputc((int)(((uint64_t)hn >> (8 * k)) & 0xff), fp);
    fwrite(h, 1, hn, fp);
    fwrite(b + 8 + n, 1, len - 8 - n, fp);
    assert_int_equal(fclose(fp), 0);
    cJSON_free(h);
    cJSON_Delete(root);
    free(b);
}

static void edit_extra(cJSON *r)
{
    cJSON *e = cJSON_Parse("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}");
    cJSON_AddItemToObject(r, "layer5.0.conv1.weight", e);
}
static void edit_missing(cJSON *r) { cJSON_DeleteItemFromObjectCaseSensitive(r, "layer3.1.bn2.running_var"); }
static void edit_shape(cJSON *r)
{
    cJSON *e = cJSON_GetObjectItemCaseSensitive(r, "conv1.weight");
    cJSON_ReplaceItemInObjectCaseSensitive(e, "shape", cJSON_Parse("[64,3,49,1]"));
}

static void expect_import_refusal(const char *path, const char *want)
{
    aibox_model *m = NULL;
    aibox_error err = {0};
    aibox_status s = aibox_import_safetensors(&m, path, "resnet18", 0, &err);
    if (s != AIBOX_E_FORMAT || !strstr(err.msg, want)) fail_msg("%s: status %d '%s' (wanted '%s')", path, s, err.msg, want);
    assert_null(m);
    printf("  refused as expected: %s\n", err.msg);
}

/* Runs the fixture script for arch at size into g_dir (skips without torch)
 * and fills the three paths. */
static void fixture(const char *arch, int size, char *st, char *in, char *ref, size_t cap)
{
    char args[512];
    snprintf(args, sizeof args, "%s %s %d", g_dir, arch, size);
    assert_int_equal(aibox_test_torch_script("tests/io/torch_parity.py", args, NULL), 0);
    snprintf(st, cap, "%s/%s.safetensors", g_dir, arch);
    snprintf(in, cap, "%s/%s.input.f32", g_dir, arch);
    snprintf(ref, cap, "%s/%s.logits.f32", g_dir, arch);
}

/* Imports st with arch_arg (NULL: recognised), checks the recorded arch and
 * preprocessing, runs the 1x3xsize x size input and compares with PyTorch's
 * logits (1e-4 relative to the largest |logit|, same top-1), in a plain
 * context and then with frozen weights (Winograd for the 3x3 convolutions). */
static void check_parity(const char *st, const char *in, const char *ref, const char *arch_arg, const char *arch,
                         int size)
{
    aibox_model *m = NULL;
    aibox_error err = {0};
    aibox_status s = aibox_import_safetensors(&m, st, arch_arg, 0, &err);
    if (s) fail_msg("import: %s", err.msg);
    const char *got = NULL;
    assert_int_equal(aibox_model_get_meta_str(m, "aibox.arch", &got), AIBOX_OK);
    assert_string_equal(got, arch);
    aibox_preproc p;
    assert_int_equal(aibox_preproc_from_model(&p, m, &err), AIBOX_OK);
    assert_int_equal(p.width, 224);
    assert_int_equal(p.resize, AIBOX_RESIZE_AREA);
    assert_true(fabsf(p.mean[1] - 0.456f) < 1e-6f && fabsf(p.std[2] - 0.225f) < 1e-6f);

    size_t inl, refl;
    unsigned char *x = aibox_test_slurp(in, &inl), *y = aibox_test_slurp(ref, &refl);
    assert_non_null(x);
    assert_non_null(y);
    assert_int_equal(inl, (size_t)3 * size * size * 4);
    assert_int_equal(refl, 1000 * 4);
    aibox_ctx *ctx = NULL;
    /* fully convolutional up to the global pool: any input size runs */
    assert_int_equal(aibox_ctx_create(&ctx, m, &(aibox_ctx_opts){.height = size, .width = size, .seed = 1}, &err), AIBOX_OK);
    for (int frozen = 0; frozen < 2; frozen++) {
        if (frozen) assert_int_equal(aibox_ctx_freeze_weights(ctx, m, &err), AIBOX_OK);
        assert_int_equal(aibox_ctx_infer(ctx, m, (const float *)x, 1, &err), AIBOX_OK);
        int c, h, w;
        const float *out = aibox_ctx_output(ctx, &c, &h, &w);
        assert_int_equal(c * h * w, 1000);
        const float *yr = (const float *)y;
        double maxdiff = 0, maxref = 0;
        int top_a = 0, top_r = 0;
        for (int i = 0; i < 1000; i++) {
            maxdiff = fmax(maxdiff, fabs((double)out[i] - yr[i]));
            maxref = fmax(maxref, fabs((double)yr[i]));
            if (out[i] > out[top_a]) top_a = i;
            if (yr[i] > yr[top_r]) top_r = i;
        }
        double rel = maxdiff / maxref;
        printf("  PyTorch parity (%s, arch %s, 1x3x%dx%d%s): max |diff| %.3g, max |ref| %.4g, relative %.3g "
               "(limit 1e-4); top-1 %d vs %d\n",
               arch, arch_arg ? "given" : "recognised", size, size, frozen ? ", frozen weights" : "", maxdiff, maxref,
               rel, top_a, top_r);
        assert_true(rel <= 1e-4);
        assert_int_equal(top_a, top_r);
    }
    aibox_ctx_free(&ctx);
    aibox_model_free(&m);
    free(x);
    free(y);
}

static void test_torch_parity(void **state)
{
    (void)state;
    char st[128], in[128], ref[128];
    fixture("resnet18", 224, st, in, ref, sizeof st);
    check_parity(st, in, ref, "resnet18", "resnet18", 224);

    /* importer refusals by tensor name, on the real state dict */
    aibox_model *m = NULL;
    aibox_error err = {0};
    char bad[128];
    snprintf(bad, sizeof bad, "%s/bad.safetensors", g_dir);
    rewrite(st, bad, edit_extra);
    expect_import_refusal(bad, "'layer5.0.conv1.weight'");
    rewrite(st, bad, edit_missing);
    expect_import_refusal(bad, "'layer3.1.bn2.running_var' is missing");
    rewrite(st, bad, edit_shape);
    expect_import_refusal(bad, "'conv1.weight' has shape [64x3x49x1]");
    /* a class count that disagrees with fc.weight */
    assert_int_equal(aibox_import_safetensors(&m, st, "resnet18", 10, &err), AIBOX_E_FORMAT);
    assert_non_null(strstr(err.msg, "fc.weight"));
    /* a ResNet-18 file is not a ResNet-50 */
    assert_int_equal(aibox_import_safetensors(&m, st, "resnet50", 0, &err), AIBOX_E_FORMAT);
    assert_null(m);
    printf("  refused as expected: %s\n", err.msg);

    /* recognised from the tensors: directly, and by aibox_import() on content */
    aibox_model *a = NULL;
    assert_int_equal(aibox_import_safetensors(&a, st, NULL, 0, &err), AIBOX_OK);
    assert_int_equal(aibox_import(&m, st, NULL, &err), AIBOX_OK);
    const char *arch = NULL;
    assert_int_equal(aibox_model_get_meta_str(m, "aibox.arch", &arch), AIBOX_OK);
    assert_string_equal(arch, "resnet18");
    assert_int_equal(aibox_model_param_count(m), 11689512);
    aibox_model_free(&a);
    aibox_model_free(&m);
    unlink(bad);
    unlink(st), unlink(in), unlink(ref);
}

/* Wide ResNet-50-2 at 64x64 (the parity is the same at any size; 64 keeps
 * the test short), its architecture recognised from the tensors. */
static void test_torch_parity_wide(void **state)
{
    (void)state;
    char st[128], in[128], ref[128];
    fixture("wide_resnet50_2", 64, st, in, ref, sizeof st);
    check_parity(st, in, ref, NULL, "wide_resnet50_2", 64);
    /* refused as the other architectures, before any model is built */
    aibox_model *m = NULL;
    aibox_error err = {0};
    assert_int_equal(aibox_import_safetensors(&m, st, "resnet50", 0, &err), AIBOX_E_FORMAT);
    assert_null(m);
    assert_non_null(strstr(err.msg, "'layer1.0.conv1.weight' has shape [128x64x1x1], resnet50 needs [64x64x1x1]"));
    printf("  refused as expected: %s\n", err.msg);
    assert_int_equal(aibox_import_safetensors(&m, st, "resnet18", 0, &err), AIBOX_E_FORMAT);
    assert_non_null(strstr(err.msg, "fc.weight"));
    printf("  refused as expected: %s\n", err.msg);
    unlink(st), unlink(in), unlink(ref);
}

/* ------------------------------------------------------------------ crafted files, memory */

/* The child side of crafted_import (this binary run with --import PATH):
 * imports with the architecture recognised, prints status, peak RSS in kB
 * and the message (an empty path reads nothing: the process's baseline). */
static int import_main(const char *path)
{
    aibox_model *m = NULL;
    aibox_error err = {0};
    aibox_status s = *path ? aibox_import_safetensors(&m, path, NULL, 0, &err) : AIBOX_E_INVALID;
    aibox_model_free(&m);
    aibox_test_print_verdict(s, err.msg);
    return 0;
}

/* Imports path in a fresh process and returns its peak RSS in bytes (VmHWM
 * starts anew with the exec; wait4's ru_maxrss would count this test's own
 * memory, inherited through fork). *st and msg receive the verdict. */
static long crafted_import(const char *path, aibox_status *st, char *msg, size_t cap)
{
    char *argv[] = {"test_safetensors", "--import", (char *)path, NULL};
    return aibox_test_child_verdict(argv, st, msg, cap);
}

/* Writes an 8-byte length (declared, or the header's when 0), header, then
 * data_len bytes of data (zeros) to path; returns the file size. */
static long write_crafted(const char *path, uint64_t declared, const char *header, size_t data_len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    size_t n = strlen(header);
    uint64_t len = declared ? declared : n;
    for (int i = 0; i < 8; i++) fputc((int)((len >> (8 * i)) & 255), fp);
    assert_int_equal(fwrite(header, 1, n, fp), n);
    static const unsigned char zeros[65536];
    for (size_t left = data_len; left;) {
        size_t k = left < sizeof zeros ? left : sizeof zeros;
        assert_int_equal(fwrite(zeros, 1, k, fp), k);
        left -= k;
    }
    assert_int_equal(fclose(fp), 0);
    return (long)(8 + n + data_len);
}

/* Files whose naive reading costs far more than their size, each refused
 * with one line naming it, at a peak RSS under 64 MB plus the file's size
 * (not asserted under ASan, whose quarantine and shadow inflate RSS). */
static void test_crafted_memory(void **state)
{
    (void)state;
    const int asan = getenv("AIBOX_ASAN") != NULL;
    long emu_base = 0; /* under an emulator, its own memory (in base) is not the reader's */
    aibox_status s;
    char msg[AIBOX_ERROR_MSG_LEN], path[160];
    long base = crafted_import("", &s, msg, sizeof msg);
    if (aibox_test_emulator()) emu_base = base;
    for (int k = 0; k < 7; k++) {
        const char *name = NULL, *want = NULL;
        long size = 0;
        char *h = NULL;
        size_t cap = 0;
        switch (k) {
        case 0: /* a header length of 2^60 */
            name = "huge_json_length", want = "header length";
            snprintf(path, sizeof path, "%s/%s.safetensors", g_dir, name);
            size = write_crafted(path, 1ull << 60, "{}", 64);
            break;
        case 1: { /* 16 MB of "[0,0,0,...": ~8M JSON values, ~700 MB as a cJSON tree */
            name = "json_values", want = "JSON values";
            cap = (16u << 20) + 64;
            h = malloc(cap);
            assert_non_null(h);
            size_t o = (size_t)snprintf(h, cap, "{\"a\":[0");
            while (o + 8 < cap - 8) h[o++] = ',', h[o++] = '0';
            memcpy(h + o, "]}", 3);
            snprintf(path, sizeof path, "%s/%s.safetensors", g_dir, name);
            size = write_crafted(path, 0, h, 0);
            break;
        }
        case 2: { /* 1000 names over one 1 MB range: 1 GB if each were converted */
            name = "overlapping_1000x", want = "fc.weight";
            cap = 1000 * 96 + 16;
            h = malloc(cap);
            assert_non_null(h);
            size_t o = (size_t)snprintf(h, cap, "{");
            for (int i = 0; i < 1000; i++)
                o += (size_t)snprintf(h + o, cap - o, "%s\"t%d\":{\"dtype\":\"F32\",\"shape\":[262144],"
                                      "\"data_offsets\":[0,1048576]}", i ? "," : "", i);
            snprintf(h + o, cap - o, "}");
            snprintf(path, sizeof path, "%s/%s.safetensors", g_dir, name);
            size = write_crafted(path, 0, h, 1u << 20);
            break;
        }
        case 3: /* 32 MB of F16: 64 MB more if converted while parsing */
            name = "f16_32mb", want = "fc.weight";
            snprintf(path, sizeof path, "%s/%s.safetensors", g_dir, name);
            size = write_crafted(path, 0, "{\"x\":{\"dtype\":\"F16\",\"shape\":[16777216],\"data_offsets\":[0,33554432]}}",
                                 32u << 20);
            break;
        case 4:
            name = "offset_past_end", want = "outside the data area";
            snprintf(path, sizeof path, "%s/%s.safetensors", g_dir, name);
            size = write_crafted(path, 0, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4000000000]}}", 8);
            break;
        case 5:
            name = "shape_overflow", want = "absurd";
            snprintf(path, sizeof path, "%s/%s.safetensors", g_dir, name);
            size = write_crafted(path, 0, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2147483647,2147483647,2147483647],"
                                 "\"data_offsets\":[0,8]}}", 8);
            break;
        default:
            name = "huge_shape_small_span", want = "span";
            snprintf(path, sizeof path, "%s/%s.safetensors", g_dir, name);
            size = write_crafted(path, 0, "{\"w\":{\"dtype\":\"F32\",\"shape\":[1073741824],\"data_offsets\":[0,8]}}", 8);
            break;
        }
        free(h);
        long rss = crafted_import(path, &s, msg, sizeof msg);
        print_message("# crafted safetensors %s (%.1f MB): %s, peak RSS %.1f MB (%.1f MB over the %.1f MB of a process "
                      "that reads nothing): %s\n", name, size / 1048576.0, s ? "refused" : "ACCEPTED", rss / 1048576.0,
                      (rss - base) / 1048576.0, base / 1048576.0, msg);
        if (s == AIBOX_OK) fail_msg("%s was accepted", name);
        if (!strstr(msg, path) || !strstr(msg, want) || strchr(msg, '\n'))
            fail_msg("%s: message '%s' (wanted '%s')", name, msg, want);
        if (!asan && rss - emu_base >= (64L << 20) + size) fail_msg("%s: peak RSS %ld bytes", name, rss);
        unlink(path);
    }
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/aibox_st_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char p[128];
    snprintf(p, sizeof p, "%s/ok.safetensors", g_dir);
    unlink(p);
    return rmdir(g_dir) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--import")) return import_main(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_f16_values),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_header_length_beyond_file),
        cmocka_unit_test(test_offsets_and_shapes),
        cmocka_unit_test(test_bad_json_and_dtypes),
        cmocka_unit_test(test_bit_flips),
        cmocka_unit_test(test_import_refusals_small),
        cmocka_unit_test(test_crafted_memory),
        cmocka_unit_test(test_torch_parity),
        cmocka_unit_test(test_torch_parity_wide),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
