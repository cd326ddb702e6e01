/* The fuzz targets' smoke test for `make check`: every seed in
 * tests/fuzz/corpus/<target> goes through the same LLVMFuzzerTestOneInput the
 * libFuzzer builds use (included here under other names, built with the
 * normal compiler and Debian's libstb), for every target: image, aibox,
 * tflite, safetensors, text. Where verdicts are stable they are pinned too:
 * the valid TFLite seeds import, the .aibox seeds load (regressions named
 * crash-* / leak-* / oom-* / timeout-* are refused), the rest are refused
 * with a one-line message naming the input. `make fuzz` runs the real
 * fuzzers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LLVMFuzzerTestOneInput fuzz_tflite_one
#include "fuzz/fuzz_tflite.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_safetensors_one
#include "fuzz/fuzz_safetensors.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_image_one
#include "fuzz/fuzz_image.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_aibox_one
#include "fuzz/fuzz_aibox.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_text_one
#include "fuzz/fuzz_text.c"
#undef LLVMFuzzerTestOneInput

#define CORPUS "tests/fuzz/corpus"
#define SEED_MAX (100u << 10) /* seeds stay small: real models never go into the repository */

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    assert_true(n >= 0);
    uint8_t *b = malloc(n ? (size_t)n : 1); /* exact size: a sanitizer sees any overread */
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

typedef void (*check_fn)(const char *name, const uint8_t *b, size_t len);

/* Runs every file of CORPUS/sub through the target and check; returns the count. */
static int each_seed(const char *sub, int (*target)(const uint8_t *, size_t), check_fn check)
{
    char dir[256];
    snprintf(dir, sizeof dir, CORPUS "/%s", sub);
    DIR *d = opendir(dir);
    if (!d) {
        print_message("%s not found (run from the source tree)\n", dir);
        skip();
    }
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        size_t len;
        uint8_t *b = slurp(p, &len);
        if (len > SEED_MAX) fail_msg("%s: %zu bytes; seeds must stay under %u", p, len, SEED_MAX);
        assert_int_equal(target(b, len), 0);
        check(e->d_name, b, len);
        free(b);
        n++;
    }
    closedir(d);
    return n;
}

static void expect_refusal_line(const char *seed, aibox_status s, const aibox_error *err, const char *name)
{
    if (s == AIBOX_OK) fail_msg("%s: accepted, expected a refusal", seed);
    if (!strstr(err->msg, name) || strchr(err->msg, '\n')) fail_msg("%s: message '%s'", seed, err->msg);
}

static int is_regression(const char *seed)
{
    return !strncmp(seed, "crash-", 6) || !strncmp(seed, "leak-", 5) || !strncmp(seed, "oom-", 4) ||
           !strncmp(seed, "timeout-", 8);
}

static void check_tflite(const char *seed, const uint8_t *b, size_t len)
{
    aibox_model *m = NULL;
    aibox_error err = {0};
    aibox_status s = aibox_tflite_import_buffer(&m, b, len, seed, NULL, &err);
    if (!strncmp(seed, "unsupported", 11)) {
        assert_int_equal(s, AIBOX_E_UNSUPPORTED);
        expect_refusal_line(seed, s, &err, seed);
    } else if (is_regression(seed) || !strncmp(seed, "bad", 3)) {
        assert_int_not_equal(s, AIBOX_OK); /* fuzzer finds kept as regressions */
        expect_refusal_line(seed, s, &err, seed);
    } else if (s != AIBOX_OK) {
        fail_msg("%s: %s", seed, err.msg);
    }
    assert_true((s == AIBOX_OK) == (m != NULL));
    aibox_model_free(&m);
}

static void check_safetensors(const char *seed, const uint8_t *b, size_t len)
{
    /* no seed holds a whole network: each is refused, by name */
    for (int i = 0; i < 2; i++) {
        aibox_model *m = (aibox_model *)1;
        aibox_error err = {0};
        aibox_status s = aibox_st_import_buffer(&m, b, len, seed, i ? "resnet18" : NULL, 0, &err);
        expect_refusal_line(seed, s, &err, seed);
        assert_null(m);
    }
}

static void check_aibox(const char *seed, const uint8_t *b, size_t len)
{
    char path[64];
    int fd = fuzz_memfd(b, len, path, sizeof path);
    aibox_model *m = NULL;
    aibox_error err = {0};
    aibox_status s = aibox_model_load(&m, path, &err);
    close(fd);
    if (is_regression(seed)) {
        assert_int_not_equal(s, AIBOX_OK);
        if (!err.msg[0] || strchr(err.msg, '\n')) fail_msg("%s: message '%s'", seed, err.msg);
    } else if (s != AIBOX_OK) {
        fail_msg("%s: %s", seed, err.msg);
    }
    aibox_model_free(&m);
}

static void check_nothing(const char *seed, const uint8_t *b, size_t len) { (void)seed, (void)b, (void)len; }

/* The inputs stb_image mishandles stay refused before stb sees them
 * (lib/image/stb_guard.c): with Debian's libstb here, a regression would
 * corrupt memory silently or allocate gigabytes. */
static void check_image(const char *seed, const uint8_t *b, size_t len)
{
    if (!is_regression(seed)) return;
    aibox_image img = {0};
    aibox_error err = {0};
    aibox_status s = aibox_image_decode(&img, b, len, seed, 0, &err);
    if (s == AIBOX_OK) fail_msg("%s: decoded, expected a refusal", seed);
    expect_refusal_line(seed, s, &err, seed);
}

static void test_image_seeds(void **state)
{
    (void)state;
    int n = each_seed("image", fuzz_image_one, check_image);
    print_message("image: %d seeds\n", n);
    assert_true(n >= 20);
}

static void test_aibox_seeds(void **state)
{
    (void)state;
    int n = each_seed("aibox", fuzz_aibox_one, check_aibox);
    print_message("aibox: %d seeds\n", n);
    assert_true(n >= 5);
}

static void test_text_seeds(void **state)
{
    (void)state;
    int n = each_seed("text", fuzz_text_one, check_nothing);
    print_message("text: %d seeds\n", n);
    assert_true(n >= 4);
}

static void test_tflite_seeds(void **state)
{
    (void)state;
    int n = each_seed("tflite", fuzz_tflite_one, check_tflite);
    print_message("tflite: %d seeds\n", n);
    assert_true(n >= 4);
}

static void test_safetensors_seeds(void **state)
{
    (void)state;
    int n = each_seed("safetensors", fuzz_safetensors_one, check_safetensors);
    print_message("safetensors: %d seeds\n", n);
    assert_true(n >= 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tflite_seeds),
        cmocka_unit_test(test_safetensors_seeds),
        cmocka_unit_test(test_image_seeds),
        cmocka_unit_test(test_aibox_seeds),
        cmocka_unit_test(test_text_seeds),
    };
    return cmocka_run_group_tests_name("fuzz/corpus", tests, NULL, NULL);
}
