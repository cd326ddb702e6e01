/* int8 (dtype 3) and int32 (dtype 4) tensors in .aibox files (an 8-bit
 * model's weights and biases): written as little-endian integers (checked
 * on the file's bytes), read back as the same values; the writer refuses a
 * value that is not an integer in range, the reader an int32 beyond 2^24 (a
 * float could not hold it) and a length that is not 1 or 4 bytes an element,
 * with a valid CRC; every truncation is refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "aibox.h"
#include "common/check.h"
#include "io/aibox_file.h"

static char g_dir[256];

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const unsigned char *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr32(unsigned char *p, uint32_t v)
{
    for (int k = 0; k < 4; k++) p[k] = (unsigned char)(v >> 8 * k);
}
static void wr64(unsigned char *p, uint64_t v)
{
    for (int k = 0; k < 8; k++) p[k] = (unsigned char)(v >> 8 * k);
}
static void fix_crc(unsigned char *b, size_t n) { wr32(b + n - 4, (uint32_t)crc32(0, b, (uInt)(n - 4))); }

static const float I8[6] = {-128, -1, 0, 1, 77, 127};
static const float I32[5] = {-16777216, -70000, 0, 123456, 16777216};

/* The index entry of tensor name: the byte offset of its dtype. */
static size_t entry_of(const unsigned char *b, const char *name)
{
    uint64_t idx = rd64(b + 48), end = idx + rd64(b + 56);
    for (size_t p = (size_t)idx; p < end;) {
        size_t nl = (size_t)(b[p] | b[p + 1] << 8);
        int hit = nl == strlen(name) && !memcmp(b + p + 2, name, nl);
        size_t at = p + 2 + nl;
        if (hit) return at;
        p = at + 2 + 8 * (size_t)b[at + 1] + 16;
    }
    fail_msg("tensor %s not in the index", name);
    return 0;
}

static void write_two(const char *path)
{
    aibox_error err = {0};
    aibox_file_tensor t[2] = {{"w", 2, {2, 3}, I8, AIBOX_FILE_I8}, {"b", 1, {5}, I32, AIBOX_FILE_I32}};
    assert_int_equal(aibox_file_write(path, NULL, 2, t, &err), AIBOX_OK);
}

static void test_round_trip_and_bytes(void **state)
{
    (void)state;
    char path[300];
    snprintf(path, sizeof path, "%s/ints.aibox", g_dir);
    write_two(path);
    size_t n;
    unsigned char *b = aibox_test_slurp(path, &n);
    assert_non_null(b);
    size_t ew = entry_of(b, "w"), eb = entry_of(b, "b");
    assert_int_equal(b[ew], 3);
    assert_int_equal(b[eb], 4);
    uint64_t offw = rd64(b + ew + 2 + 16), lenw = rd64(b + ew + 2 + 16 + 8);
    uint64_t offb = rd64(b + eb + 2 + 8), lenb = rd64(b + eb + 2 + 8 + 8);
    assert_int_equal(lenw, 6);
    assert_int_equal(lenb, 20);
    for (int i = 0; i < 6; i++) assert_int_equal((int8_t)b[offw + (size_t)i], (int)I8[i]);
    for (int i = 0; i < 5; i++) assert_int_equal((int32_t)rd32(b + offb + 4 * (size_t)i), (int32_t)I32[i]);
    aibox_file *f = NULL;
    aibox_error err = {0};
    assert_int_equal(aibox_file_read(path, &f, &err), AIBOX_OK);
    int nd;
    int64_t dims[4];
    const float *w = aibox_file_tensor_data(f, "w", &nd, dims), *bb = aibox_file_tensor_data(f, "b", NULL, NULL);
    assert_int_equal(nd, 2);
    assert_int_equal(dims[0], 2);
    for (int i = 0; i < 6; i++) assert_float_equal(w[i], I8[i], 0);
    for (int i = 0; i < 5; i++) assert_float_equal(bb[i], I32[i], 0);
    aibox_file_free(&f);
    /* every truncation is refused */
    for (size_t cut = 0; cut < n; cut += (cut < 200 ? 1 : 7))
        assert_int_not_equal(aibox_file_read_mem(b, cut, "cut", &f, &err), AIBOX_OK);
    free(b);
}

static void test_refusals(void **state)
{
    (void)state;
    char path[300];
    aibox_error err = {0};
    snprintf(path, sizeof path, "%s/bad.aibox", g_dir);
    const float bad8[3][1] = {{128}, {-129}, {0.5f}};
    for (int k = 0; k < 3; k++) {
        aibox_file_tensor t = {"w", 1, {1}, bad8[k], AIBOX_FILE_I8};
        assert_int_equal(aibox_file_write(path, NULL, 1, &t, &err), AIBOX_E_INVALID);
        assert_non_null(strstr(err.msg, "not an integer"));
    }
    const float bad32[1] = {16777218.0f};
    aibox_file_tensor t = {"b", 1, {1}, bad32, AIBOX_FILE_I32};
    assert_int_equal(aibox_file_write(path, NULL, 1, &t, &err), AIBOX_E_INVALID);
    assert_int_equal(access(path, F_OK), -1); /* nothing written */
    /* the reader: an int32 beyond 2^24 and a wrong length, with valid CRCs */
    write_two(path);
    size_t n;
    unsigned char *b = aibox_test_slurp(path, &n);
    assert_non_null(b);
    size_t eb = entry_of(b, "b");
    uint64_t offb = rd64(b + eb + 2 + 8);
    unsigned char *c = malloc(n);
    memcpy(c, b, n);
    wr32(c + offb, 16777217u);
    fix_crc(c, n);
    aibox_file *f = NULL;
    assert_int_equal(aibox_file_read_mem(c, n, "big", &f, &err), AIBOX_E_FORMAT);
    print_message("%s\n", err.msg);
    assert_non_null(strstr(err.msg, "2^24"));
    memcpy(c, b, n);
    size_t ew = entry_of(c, "w");
    wr64(c + ew + 2 + 16 + 8, 24); /* 6 int8 values claimed as 24 bytes */
    fix_crc(c, n);
    assert_int_equal(aibox_file_read_mem(c, n, "len", &f, &err), AIBOX_E_FORMAT);
    print_message("%s\n", err.msg);
    memcpy(c, b, n);
    c[ew] = 5; /* an unknown dtype */
    fix_crc(c, n);
    assert_int_equal(aibox_file_read_mem(c, n, "dtype", &f, &err), AIBOX_E_FORMAT);
    print_message("%s\n", err.msg);
    free(b), free(c);
}

static int setup(void **state)
{
    (void)state;
    return aibox_test_mkdtemp(g_dir, sizeof g_dir, "int");
}

static int teardown(void **state)
{
    (void)state;
    return aibox_test_rm_rf(g_dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_and_bytes),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
