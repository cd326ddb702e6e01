/* .aibox container: exact round trips, a hand-built file that follows
 * lib/io/FORMAT.md, refusal of every truncation and every bit flip, foreign
 * and hostile files, and atomic saves that fail without harm. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <signal.h>

#include "common/check.h"
#include "core/atomic.h"
#include "io/aibox_file.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

static char g_dir[256];

/* ------------------------------------------------------------------ helpers */
static void path_in(char *out, size_t cap, const char *leaf) { snprintf(out, cap, "%s/%s", g_dir, leaf); }

static void spit(const char *path, const void *b, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    if (n) assert_int_equal(fwrite(b, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

/* Names of the entries in g_dir, to prove no temporary file is left. */
static int dir_entries(char names[][256], int max)
{
    DIR *d = opendir(g_dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (n < max) snprintf(names[n], 256, "%s", e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

static void rm_tree(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0) return;
    if (S_ISDIR(sb.st_mode)) {
        chmod(path, 0700);
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d))) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
                char sub[1024];
                snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
                rm_tree(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const unsigned char *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static void wr32(unsigned char *p, uint32_t v)
{
    for (int k = 0; k < 4; k++) p[k] = (unsigned char)(v >> 8 * k);
}
static void wr64(unsigned char *p, uint64_t v)
{
    for (int k = 0; k < 8; k++) p[k] = (unsigned char)(v >> 8 * k);
}
static void fix_crc(unsigned char *b, size_t len)
{
    wr32(b + len - 4, (uint32_t)crc32(0, b, (uInt)(len - 4)));
}
static float bits_f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static double bits_d(uint64_t u)
{
    double d;
    memcpy(&d, &u, 8);
    return d;
}

/* Asserts a refusal: the expected status, a one-line message naming the
 * file and, when given, containing `want`. */
static void expect_refusal(aibox_status got, const aibox_error *e, aibox_status want_code, const char *name,
                           const char *want)
{
    if (got != want_code || !strstr(e->msg, name) || (want && !strstr(e->msg, want)) || strchr(e->msg, '\n'))
        print_error("got status %d \"%s\", wanted status %d containing \"%s\"\n", (int)got, e->msg, (int)want_code,
                    want ? want : "");
    assert_int_equal(got, want_code);
    assert_non_null(strstr(e->msg, name));
    if (want) assert_non_null(strstr(e->msg, want));
    assert_null(strchr(e->msg, '\n'));
}

static aibox_status parse(const unsigned char *b, size_t n, aibox_error *e)
{
    aibox_file *f = NULL;
    aibox_status st = aibox_file_read_mem(b, n, "x.aibox", &f, e);
    if (st == AIBOX_OK) assert_non_null(f);
    else assert_null(f);
    aibox_file_free(&f);
    return st;
}

/* A small valid file from the library's writer. */
static unsigned char *small_file(size_t *len)
{
    aibox_meta_list m = {0};
    assert_int_equal(aibox_meta_set_str(&m, "aibox.arch", "small", NULL), AIBOX_OK);
    assert_int_equal(aibox_meta_set_int(&m, "aibox.size", 28, NULL), AIBOX_OK);
    const char *cls[] = {"ok", "ng"};
    assert_int_equal(aibox_meta_set_strs(&m, "aibox.class_names", 2, cls, NULL), AIBOX_OK);
    float a[6] = {1, 2, 3, 4, 5, 6}, b[1] = {-1};
    aibox_file_tensor t[2] = {{"conv1.weight", 2, {2, 3}, a, AIBOX_FILE_F32},
                               {"conv1.bias", 1, {1}, b, AIBOX_FILE_F32}};
    char p[512];
    path_in(p, sizeof p, "small.aibox");
    aibox_error e = {0};
    assert_int_equal(aibox_file_write(p, &m, 2, t, &e), AIBOX_OK);
    aibox_meta_list_free(&m);
    unsigned char *buf = aibox_test_slurp(p, len);
    unlink(p);
    return buf;
}

/* ------------------------------------------------------------------ metadata lists */
static void test_meta_list(void **state)
{
    (void)state;
    aibox_meta_list l = {0};
    aibox_error e = {0};
    assert_int_equal(aibox_meta_set_int(&l, "a.b", 7, &e), AIBOX_OK);
    assert_int_equal(aibox_meta_set_str(&l, "name", "Prüfteil ✓", &e), AIBOX_OK);
    assert_int_equal(aibox_meta_set_ints(&l, "empty", 0, NULL, &e), AIBOX_OK);
    const aibox_meta *m = aibox_meta_find(&l, "a.b");
    assert_non_null(m);
    assert_int_equal(m->type, AIBOX_META_INT);
    assert_int_equal(m->i, 7);
    /* Replacing keeps the position and may change the type. */
    double fv[2] = {0.5, -2};
    assert_int_equal(aibox_meta_set_floats(&l, "a.b", 2, fv, &e), AIBOX_OK);
    assert_int_equal(l.count, 3);
    assert_string_equal(l.items[0].key, "a.b");
    assert_int_equal(l.items[0].type, AIBOX_META_FLOATS);
    assert_int_equal(l.items[0].n, 2);
    assert_true(l.items[0].floats[1] == -2.0);
    assert_null(aibox_meta_find(&l, "missing"));
    assert_null(aibox_meta_find(&l, NULL));

    /* Refusals leave the list unchanged. */
    char long_key[300];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = 0;
    const char *bad_keys[] = {"", "has space", "tab\t", "ünï", long_key, NULL};
    for (int k = 0; k < 6; k++) {
        e.msg[0] = 0;
        assert_int_equal(aibox_meta_set_int(&l, bad_keys[k], 1, &e), AIBOX_E_INVALID);
        assert_true(strlen(e.msg) > 0);
    }
    long_key[255] = 0; /* exactly 255 bytes is allowed */
    assert_int_equal(aibox_meta_set_int(&l, long_key, 1, &e), AIBOX_OK);
    assert_int_equal(aibox_meta_set_str(&l, "s", "\xff\xfe", &e), AIBOX_E_INVALID);
    assert_non_null(strstr(e.msg, "UTF-8"));
    assert_int_equal(aibox_meta_set_str(&l, "s", "\xed\xa0\x80", &e), AIBOX_E_INVALID); /* a surrogate */
    assert_int_equal(aibox_meta_set_str(&l, "s", "\xc0\xaf", &e), AIBOX_E_INVALID);     /* overlong '/' */
    assert_int_equal(aibox_meta_set_str(&l, "s", NULL, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_meta_set_ints(&l, "s", -1, NULL, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_meta_set_ints(&l, "s", 3, NULL, &e), AIBOX_E_INVALID);
    const char *strs_bad[] = {"fine", NULL};
    assert_int_equal(aibox_meta_set_strs(&l, "s", 2, strs_bad, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_meta_set_str(&l, "a.b", "\xff", &e), AIBOX_E_INVALID);
    assert_int_equal(l.items[0].type, AIBOX_META_FLOATS); /* failed replace kept the old value */
    assert_int_equal(l.count, 4);
    assert_null(aibox_meta_find(&l, "s"));

    aibox_meta_list c = {0};
    assert_int_equal(aibox_meta_set_int(&c, "old", 1, &e), AIBOX_OK);
    assert_int_equal(aibox_meta_copy(&c, &l, &e), AIBOX_OK); /* replaces c's contents */
    assert_int_equal(c.count, l.count);
    assert_null(aibox_meta_find(&c, "old"));
    assert_string_equal(aibox_meta_find(&c, "name")->s, "Prüfteil ✓");
    assert_ptr_not_equal(aibox_meta_find(&c, "name")->s, aibox_meta_find(&l, "name")->s);
    assert_int_equal(aibox_meta_copy(&c, &c, &e), AIBOX_OK);
    aibox_meta_list_free(&l);
    assert_int_equal(l.count, 0);
    aibox_meta_list_free(&l); /* twice is harmless */
    assert_int_equal(aibox_meta_copy(&c, NULL, &e), AIBOX_OK);
    assert_int_equal(c.count, 0);
    aibox_meta_list_free(&c);
}

/* ------------------------------------------------------------------ round trip */
static const uint32_t SPECIAL_F32[] = {
    0x7fc00000u, /* quiet NaN */
    0x7fc00001u, /* NaN with payload */
    0xffbadbadu, /* negative NaN with payload */
    0x7f800001u, /* signalling NaN */
    0x7f800000u, 0xff800000u, /* +-inf */
    0x00000001u, 0x807fffffu, /* subnormals */
    0x80000000u, 0x00000000u, /* -0, +0 */
    0x7f7fffffu, 0x3f800000u,
};

static void test_roundtrip_exact(void **state)
{
    (void)state;
    aibox_meta_list m = {0};
    aibox_error e = {0};
    assert_int_equal(aibox_meta_set_int(&m, "i.min", INT64_MIN, &e), AIBOX_OK);
    assert_int_equal(aibox_meta_set_int(&m, "i.max", INT64_MAX, &e), AIBOX_OK);
    assert_int_equal(aibox_meta_set_float(&m, "f.nan", bits_d(0x7ff8dead0000beefull), &e), AIBOX_OK);
    assert_int_equal(aibox_meta_set_float(&m, "f.negzero", -0.0, &e), AIBOX_OK);
    assert_int_equal(aibox_meta_set_float(&m, "f.denorm", bits_d(1), &e), AIBOX_OK);
    assert_int_equal(aibox_meta_set_str(&m, "s.utf8", "Prüfteil ✓ 日本語 😀", &e), AIBOX_OK);
    assert_int_equal(aibox_meta_set_str(&m, "s.empty", "", &e), AIBOX_OK);
    int64_t iv[3] = {-1, 0, INT64_MAX};
    assert_int_equal(aibox_meta_set_ints(&m, "a.ints", 3, iv, &e), AIBOX_OK);
    assert_int_equal(aibox_meta_set_ints(&m, "a.ints0", 0, NULL, &e), AIBOX_OK);
    double dv[3] = {INFINITY, -INFINITY, bits_d(0xfff0000000000001ull)};
    assert_int_equal(aibox_meta_set_floats(&m, "a.floats", 3, dv, &e), AIBOX_OK);
    assert_int_equal(aibox_meta_set_floats(&m, "a.floats0", 0, NULL, &e), AIBOX_OK);
    const char *sv[4] = {"ok", "", "nicht in Ordnung", "不良"};
    assert_int_equal(aibox_meta_set_strs(&m, "a.strs", 4, sv, &e), AIBOX_OK);
    assert_int_equal(aibox_meta_set_strs(&m, "a.strs0", 0, NULL, &e), AIBOX_OK);

    /* Odd sizes so tensor ends fall everywhere relative to 64-byte blocks. */
    enum { NT = 6 };
    int64_t dims[NT][4] = {{1}, {3, 5, 7}, {1, 1, 1, 13}, {0, 5}, {17}, {2, 3, 5, 7}};
    int ndims[NT] = {1, 3, 4, 2, 1, 4};
    const char *names[NT] = {"t.one", "t.357", "t.13", "t.empty", "t.special", "t.210"};
    float *data[NT];
    aibox_file_tensor ts[NT];
    for (int k = 0; k < NT; k++) {
        size_t c = 1;
        for (int d = 0; d < ndims[k]; d++) c *= (size_t)dims[k][d];
        data[k] = malloc(c ? c * 4 : 4);
        assert_non_null(data[k]);
        for (size_t j = 0; j < c; j++)
            data[k][j] = k == 4 ? bits_f(SPECIAL_F32[j % 12]) : (float)((double)j * 0.37 - 3.1) * (float)(k + 1);
        ts[k] = (aibox_file_tensor){names[k], ndims[k], {0}, c ? data[k] : NULL, AIBOX_FILE_F32};
        memcpy(ts[k].dims, dims[k], sizeof dims[k]);
    }
    char p1[512], p2[512];
    path_in(p1, sizeof p1, "rt1.aibox");
    path_in(p2, sizeof p2, "rt2.aibox");
    assert_int_equal(aibox_file_write(p1, &m, NT, ts, &e), AIBOX_OK);

    aibox_file *f = NULL;
    assert_int_equal(aibox_file_read(p1, &f, &e), AIBOX_OK);
    assert_int_equal(f->meta.count, m.count);
    for (int k = 0; k < m.count; k++) {
        const aibox_meta *a = &m.items[k], *b = &f->meta.items[k];
        assert_string_equal(a->key, b->key); /* order kept */
        assert_int_equal(a->type, b->type);
        assert_int_equal(a->n, b->n);
        switch (a->type) {
        case AIBOX_META_INT: assert_true(a->i == b->i); break;
        case AIBOX_META_FLOAT: assert_memory_equal(&a->f, &b->f, 8); break;
        case AIBOX_META_STR: assert_string_equal(a->s, b->s); break;
        case AIBOX_META_INTS:
            if (a->n) assert_memory_equal(a->ints, b->ints, 8 * (size_t)a->n);
            else assert_null(b->ints);
            break;
        case AIBOX_META_FLOATS:
            if (a->n) assert_memory_equal(a->floats, b->floats, 8 * (size_t)a->n);
            else assert_null(b->floats);
            break;
        case AIBOX_META_STRS:
            for (int j = 0; j < a->n; j++) assert_string_equal(a->strs[j], b->strs[j]);
            if (!a->n) assert_null(b->strs);
            break;
        }
    }
    assert_int_equal(f->n_tensors, NT);
    for (int k = 0; k < NT; k++) {
        int nd = 0;
        int64_t dd[4] = {9, 9, 9, 9};
        const float *got = aibox_file_tensor_data(f, names[k], &nd, dd);
        assert_non_null(got);
        assert_int_equal((uintptr_t)got % 64, 0);
        assert_int_equal(nd, ndims[k]);
        for (int d = 0; d < 4; d++) assert_true(dd[d] == (d < nd ? dims[k][d] : 0));
        assert_string_equal(f->tensors[k].name, names[k]);
        if (f->tensors[k].count) assert_memory_equal(got, data[k], f->tensors[k].count * 4);
    }
    assert_null(aibox_file_tensor_data(f, "absent", NULL, NULL));

    /* Saving what was loaded reproduces the file byte for byte. */
    aibox_file_tensor back[NT];
    for (int k = 0; k < NT; k++) {
        back[k] = (aibox_file_tensor){f->tensors[k].name, f->tensors[k].ndim, {0}, f->tensors[k].data,
                                      f->tensors[k].dtype};
        memcpy(back[k].dims, f->tensors[k].dims, sizeof back[k].dims);
    }
    assert_int_equal(aibox_file_write(p2, &f->meta, NT, back, &e), AIBOX_OK);
    size_t n1, n2;
    unsigned char *b1 = aibox_test_slurp(p1, &n1), *b2 = aibox_test_slurp(p2, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    assert_int_equal(rd64(b1 + 16), n1);
    assert_int_equal(rd64(b1 + 64) % 64, 0);

    /* The memory reader agrees, even from a misaligned buffer. */
    unsigned char *mis = malloc(n1 + 1);
    memcpy(mis + 1, b1, n1);
    aibox_file *g = NULL;
    assert_int_equal(aibox_file_read_mem(mis + 1, n1, "mem", &g, &e), AIBOX_OK);
    assert_int_equal((uintptr_t)g->tensors[1].data % 64, 0);
    assert_memory_equal(g->tensors[4].data, data[4], 17 * 4);
    aibox_file_free(&g);
    assert_null(g);
    aibox_file_free(&g);

    char names_left[4][256];
    assert_int_equal(dir_entries(names_left, 4), 2); /* no temporary files */
    free(mis);
    free(b1);
    free(b2);
    aibox_file_free(&f);
    for (int k = 0; k < NT; k++) free(data[k]);
    aibox_meta_list_free(&m);
    unlink(p1);
    unlink(p2);
}

/* No metadata, no tensors, and many minimal tensors (smallest index entries). */
static void test_roundtrip_edges(void **state)
{
    (void)state;
    char p[512];
    path_in(p, sizeof p, "edge.aibox");
    aibox_error e = {0};
    aibox_file *f = NULL;
    assert_int_equal(aibox_file_write(p, NULL, 0, NULL, &e), AIBOX_OK);
    assert_int_equal(aibox_file_read(p, &f, &e), AIBOX_OK);
    assert_int_equal(f->meta.count, 0);
    assert_int_equal(f->n_tensors, 0);
    aibox_file_free(&f);

    enum { N = 40 };
    char nm[N][4];
    float v[N];
    aibox_file_tensor t[N];
    aibox_meta_list m = {0};
    for (int k = 0; k < N; k++) {
        snprintf(nm[k], sizeof nm[k], "%c", '!' + k);
        v[k] = (float)k;
        t[k] = (aibox_file_tensor){nm[k], 1, {1}, &v[k], AIBOX_FILE_F32};
        assert_int_equal(aibox_meta_set_str(&m, nm[k], "", &e), AIBOX_OK); /* smallest metadata entries */
    }
    assert_int_equal(aibox_file_write(p, &m, N, t, &e), AIBOX_OK);
    assert_int_equal(aibox_file_read(p, &f, &e), AIBOX_OK);
    assert_int_equal(f->n_tensors, N);
    assert_int_equal(f->meta.count, N);
    for (int k = 0; k < N; k++) {
        assert_true(f->tensors[k].data[0] == (float)k);
        assert_int_equal((uintptr_t)f->tensors[k].data % 64, 0);
    }
    aibox_file_free(&f);
    aibox_meta_list_free(&m);
    unlink(p);
}

/* ------------------------------------------------------------------ the spec, by hand */
typedef struct raw {
    unsigned char b[2048];
    size_t n;
    size_t t0_dtype, t0_dims, t0_off, t0_nbytes, t1_name, t1_off, t1_dims;
    size_t k2_name, str_len, str_bytes, ints_n, type_pos;
} raw;

static void r8(raw *r, unsigned v) { r->b[r->n++] = (unsigned char)v; }
static void r16(raw *r, uint16_t v) { wr16(r->b + r->n, v), r->n += 2; }
static void r32(raw *r, uint32_t v) { wr32(r->b + r->n, v), r->n += 4; }
static void r64(raw *r, uint64_t v) { wr64(r->b + r->n, v), r->n += 8; }
static void rbytes(raw *r, const char *s) { memcpy(r->b + r->n, s, strlen(s)), r->n += strlen(s); }
static void rname(raw *r, const char *s) { r16(r, (uint16_t)strlen(s)), rbytes(r, s); }

/* Assembles a file from FORMAT.md alone, recording where fields live so the
 * hostile tests can change them. Tensor "w" is 4-D (1,1,2,3), "b" 1-D (2). */
static void build_raw(raw *r)
{
    memset(r, 0, sizeof *r);
    memcpy(r->b, "AIBOX\0MD", 8);
    r->n = 80;
    /* metadata: 5 entries */
    rname(r, "k1"), r->type_pos = r->n, r8(r, 1), r64(r, (uint64_t)-42);
    r->k2_name = r->n + 2;
    rname(r, "k2"), r8(r, 2), r64(r, 0x3ff8000000000000ull); /* 1.5 */
    rname(r, "arch"), r8(r, 3), r->str_len = r->n, r32(r, 5), r->str_bytes = r->n, rbytes(r, "small");
    rname(r, "ids"), r8(r, 4), r->ints_n = r->n, r32(r, 2), r64(r, 7), r64(r, (uint64_t)-7);
    rname(r, "cls"), r8(r, 6), r32(r, 2), r32(r, 2), rbytes(r, "ok"), r32(r, 3), rbytes(r, "n\xc3\xa4");
    size_t meta_end = r->n;
    /* index */
    rname(r, "w");
    r->t0_dtype = r->n;
    r8(r, 1), r8(r, 4);
    r->t0_dims = r->n;
    r64(r, 1), r64(r, 1), r64(r, 2), r64(r, 3);
    r->t0_off = r->n;
    r64(r, 0);
    r->t0_nbytes = r->n;
    r64(r, 24);
    r->t1_name = r->n + 2;
    rname(r, "b"), r8(r, 1), r8(r, 1);
    r->t1_dims = r->n;
    r64(r, 2);
    r->t1_off = r->n;
    r64(r, 0), r64(r, 8);
    size_t idx_end = r->n;
    size_t data_off = (r->n + 63) / 64 * 64;
    r->n = data_off;
    for (int k = 0; k < 6; k++) r32(r, 0x3f800000u); /* 1.0f */
    size_t t1 = (r->n + 63) / 64 * 64;
    r->n = t1;
    r32(r, 0xbf800000u), r32(r, 0x7fc00001u); /* -1.0f, NaN payload */
    size_t data_end = r->n;
    r->n += 4;
    wr64(r->b + r->t0_off, data_off);
    wr64(r->b + r->t1_off, t1);
    wr32(r->b + 8, 1);
    wr64(r->b + 16, r->n);
    wr32(r->b + 24, 5);
    wr32(r->b + 28, 2);
    wr64(r->b + 32, 80);
    wr64(r->b + 40, meta_end - 80);
    wr64(r->b + 48, meta_end);
    wr64(r->b + 56, idx_end - meta_end);
    wr64(r->b + 64, data_off);
    wr64(r->b + 72, data_end - data_off);
    fix_crc(r->b, r->n);
}

static void test_spec_by_hand(void **state)
{
    (void)state;
    raw r;
    build_raw(&r);
    aibox_error e = {0};
    aibox_file *f = NULL;
    assert_int_equal(aibox_file_read_mem(r.b, r.n, "hand", &f, &e), AIBOX_OK);
    assert_int_equal(aibox_meta_find(&f->meta, "k1")->i, -42);
    assert_true(aibox_meta_find(&f->meta, "k2")->f == 1.5);
    assert_string_equal(aibox_meta_find(&f->meta, "arch")->s, "small");
    assert_int_equal(aibox_meta_find(&f->meta, "ids")->ints[1], -7);
    assert_string_equal(aibox_meta_find(&f->meta, "cls")->strs[1], "nä");
    int nd;
    int64_t d[4];
    const float *w = aibox_file_tensor_data(f, "w", &nd, d);
    assert_int_equal(nd, 4);
    assert_true(d[0] == 1 && d[1] == 1 && d[2] == 2 && d[3] == 3);
    assert_true(w[5] == 1.0f);
    const float *bias = aibox_file_tensor_data(f, "b", &nd, d);
    uint32_t nanbits;
    memcpy(&nanbits, &bias[1], 4);
    assert_int_equal(nanbits, 0x7fc00001u);

    /* The library's writer produces exactly these bytes from the same content. */
    char p[512];
    path_in(p, sizeof p, "hand.aibox");
    aibox_file_tensor ts[2] = {{"w", 4, {1, 1, 2, 3}, w, AIBOX_FILE_F32}, {"b", 1, {2}, bias, AIBOX_FILE_F32}};
    assert_int_equal(aibox_file_write(p, &f->meta, 2, ts, &e), AIBOX_OK);
    size_t n;
    unsigned char *b = aibox_test_slurp(p, &n);
    assert_int_equal(n, r.n);
    assert_memory_equal(b, r.b, n);
    free(b);
    unlink(p);
    aibox_file_free(&f);
}

/* ------------------------------------------------------------------ damage */
static void test_every_truncation(void **state)
{
    (void)state;
    size_t len;
    unsigned char *b = small_file(&len);
    char p[512];
    path_in(p, sizeof p, "cut.aibox");
    for (size_t k = 0; k < len; k++) {
        aibox_error e = {0};
        /* From memory... */
        aibox_status st = parse(b, k, &e);
        expect_refusal(st, &e, AIBOX_E_CORRUPT, "x.aibox", k == 0 ? "empty" : "truncated");
        if (k >= 24) assert_non_null(strstr(e.msg, "expected"));
        else if (k > 0) assert_non_null(strstr(e.msg, "only"));
        /* ...and from disk, which takes the early peek-then-read path. */
        spit(p, b, k);
        aibox_file *f = NULL;
        st = aibox_file_read(p, &f, &e);
        expect_refusal(st, &e, AIBOX_E_CORRUPT, p, k == 0 ? "empty" : "truncated");
        assert_null(f);
    }
    unlink(p);
    aibox_error e = {0};
    assert_int_equal(parse(b, len, &e), AIBOX_OK);
    free(b);
}

static void test_every_bit_flip(void **state)
{
    (void)state;
    size_t len;
    unsigned char *b = small_file(&len);
    int by_code[16] = {0};
    for (size_t bit = 0; bit < 8 * len; bit++) {
        b[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        aibox_error e = {0};
        aibox_status st = parse(b, len, &e);
        if (st == AIBOX_OK) print_error("bit %zu flipped was accepted\n", bit);
        assert_int_not_equal(st, AIBOX_OK);
        assert_true(strlen(e.msg) > 0);
        assert_non_null(strstr(e.msg, "x.aibox"));
        assert_null(strchr(e.msg, '\n'));
        /* A flipped size field is called damage, not truncation. */
        if (bit / 8 >= 16 && bit / 8 < 24) assert_non_null(strstr(e.msg, "damaged"));
        if (bit / 8 >= 8) assert_int_equal(st, AIBOX_E_CORRUPT);
        by_code[st]++;
        b[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
    assert_int_equal(by_code[AIBOX_E_FORMAT], 64); /* the magic */
    assert_int_equal(by_code[AIBOX_E_CORRUPT], 8 * (int)len - 64);
    free(b);
}

static void test_appended_bytes(void **state)
{
    (void)state;
    size_t len;
    unsigned char *b = small_file(&len);
    unsigned char *c = calloc(1, len + 10);
    memcpy(c, b, len);
    aibox_error e = {0};
    expect_refusal(parse(c, len + 10, &e), &e, AIBOX_E_CORRUPT, "x.aibox", "appended");
    free(c);
    free(b);
}

static void test_foreign_files(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        size_t n;
        const char *want;
    } cases[] = {
        {"\x1c\0\0\0TFL3\x14\0\x20\0\x1c\0\x18\0", 16, "TensorFlow Lite"},
        {"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16, "PNG"},
        {"\xff\xd8\xff\xe0\0\x10JFIF", 10, "JPEG"},
        {"PK\x03\x04\x14\0\0\0", 8, "ZIP"},
        {"\x80\x02\x63\x63ollections", 15, "pickle"},
        {"\x2a\0\0\0\0\0\0\0{\"w\":{}}", 16, "safetensors"},
        {"version https://git-lfs.github.com/spec/v1\n", 43, "Git LFS"},
        {"<!DOCTYPE html><html>", 21, "HTML"},
        {"hello, this is not a model\n", 27, "text file"},
        {"\x89HDF\r\n\x1a\n", 8, "HDF5"},
        {"\x01\x02\x03\x04\x05\x06\x07\x08\x09", 9, "01 02 03"},
        {"AIBOY", 5, "not an aibox"},
    };
    char p[512];
    path_in(p, sizeof p, "foreign.bin");
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        aibox_error e = {0};
        expect_refusal(parse((const unsigned char *)cases[k].bytes, cases[k].n, &e), &e, AIBOX_E_FORMAT, "x.aibox",
                       cases[k].want);
        assert_non_null(strstr(e.msg, "not an aibox model file"));
        spit(p, cases[k].bytes, cases[k].n);
        aibox_file *f = NULL;
        expect_refusal(aibox_file_read(p, &f, &e), &e, AIBOX_E_FORMAT, p, cases[k].want);
    }
    unlink(p);
}

static void test_missing_and_odd_paths(void **state)
{
    (void)state;
    aibox_error e = {0};
    aibox_file *f = (aibox_file *)&e; /* must be reset to NULL */
    char p[512];
    path_in(p, sizeof p, "nope.aibox");
    expect_refusal(aibox_file_read(p, &f, &e), &e, AIBOX_E_NOTFOUND, p, "cannot open");
    assert_null(f);
    expect_refusal(aibox_file_read(g_dir, &f, &e), &e, AIBOX_E_IO, g_dir, "not a regular file");
    assert_int_equal(aibox_file_read(NULL, &f, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_file_read(p, NULL, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_file_read_mem(NULL, 5, "m", &f, &e), AIBOX_E_INVALID);
    expect_refusal(aibox_file_read_mem(NULL, 0, "m", &f, &e), &e, AIBOX_E_CORRUPT, "m", "empty");
}

/* A header claiming more bytes than memory allows must fail cleanly. The
 * allocation is made to fail with an address-space limit in a child process
 * (overcommit would otherwise let it succeed); ASan cannot run under one,
 * nor can an emulator (the limit would bind qemu's own address space). */
static void test_file_too_big_for_memory(void **state)
{
    (void)state;
    if (UNDER_ASAN || aibox_test_emulator()) {
        print_message("address-space limit not applied: %s\n", UNDER_ASAN ? "ASan build" : "emulated run");
        skip();
        return;
    }
    char p[512];
    path_in(p, sizeof p, "huge.aibox");
    const uint64_t size = (uint64_t)4 << 30;
    unsigned char hdr[80] = {0};
    memcpy(hdr, "AIBOX\0MD", 8);
    wr32(hdr + 8, 1);
    wr64(hdr + 16, size);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, hdr, sizeof hdr), (ssize_t)sizeof hdr);
    assert_int_equal(ftruncate(fd, (off_t)size), 0); /* sparse: no disk used */
    close(fd);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        long pages = 0, page = sysconf(_SC_PAGESIZE);
        FILE *sm = fopen("/proc/self/statm", "r");
        if (!sm || fscanf(sm, "%ld", &pages) != 1) _exit(3);
        fclose(sm);
        struct rlimit rl;
        rl.rlim_cur = rl.rlim_max = (rlim_t)pages * (rlim_t)page + ((rlim_t)256 << 20);
        if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(4);
        aibox_error e = {0};
        aibox_file *f = NULL;
        aibox_status st = aibox_file_read(p, &f, &e);
        _exit(st == AIBOX_E_NOMEM && f == NULL && strstr(e.msg, p) && strstr(e.msg, "allocate") ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    unlink(p);
}

/* ------------------------------------------------------------------ valid CRC, bad content */
static void test_wrong_version(void **state)
{
    (void)state;
    size_t len;
    unsigned char *b = small_file(&len);
    aibox_error e = {0};
    wr32(b + 8, 2);
    fix_crc(b, len);
    expect_refusal(parse(b, len, &e), &e, AIBOX_E_UNSUPPORTED, "x.aibox", "version 2");
    assert_non_null(strstr(e.msg, "reads version 1"));
    wr32(b + 8, 0xffffffffu);
    fix_crc(b, len);
    expect_refusal(parse(b, len, &e), &e, AIBOX_E_UNSUPPORTED, "x.aibox", "version 4294967295");
    wr32(b + 8, 0);
    fix_crc(b, len);
    expect_refusal(parse(b, len, &e), &e, AIBOX_E_FORMAT, "x.aibox", "version 0");
    /* A damaged newer file is reported as damaged: the CRC comes first. */
    wr32(b + 8, 2);
    expect_refusal(parse(b, len, &e), &e, AIBOX_E_CORRUPT, "x.aibox", "checksum");
    free(b);
}

typedef void (*mutator)(raw *r);
#define MUT(name, body) \
    static void name(raw *r) { body; }
MUT(m_t1_offset_past_end, wr64(r->b + r->t1_off, (r->n + 64) / 64 * 64))
MUT(m_t1_offset_huge, wr64(r->b + r->t1_off, 0xffffffffffffffc0ull))
MUT(m_t0_offset_misaligned, wr64(r->b + r->t0_off, rd64(r->b + r->t0_off) + 4))
MUT(m_t1_overlaps, wr64(r->b + r->t1_off, rd64(r->b + r->t0_off)))
MUT(m_t0_nbytes, wr64(r->b + r->t0_nbytes, 28))
MUT(m_t0_nbytes_huge, wr64(r->b + r->t0_nbytes, 0xfffffffffffffffcull))
MUT(m_dims_overflow, for (int k = 0; k < 4; k++) wr64(r->b + r->t0_dims + 8 * k, 0x7fffffffull))
MUT(m_dim_too_big, wr64(r->b + r->t0_dims, (uint64_t)1 << 40))
MUT(m_dim_max, wr64(r->b + r->t1_dims, 0x7fffffffull))
MUT(m_meta_count_huge, wr32(r->b + 24, 0xffffffffu))
MUT(m_meta_count_big, wr32(r->b + 24, 1000000))
MUT(m_meta_count_short, wr32(r->b + 24, 4))
MUT(m_tensor_count_huge, wr32(r->b + 28, 0x7fffffffu))
MUT(m_tensor_count_big, wr32(r->b + 28, 999999))
MUT(m_tensor_count_short, wr32(r->b + 28, 1))
MUT(m_str_len_huge, wr32(r->b + r->str_len, 0xffffffffu))
MUT(m_str_len_past, wr32(r->b + r->str_len, 1000))
MUT(m_str_bad_utf8, r->b[r->str_bytes] = 0xff)
MUT(m_str_nul, r->b[r->str_bytes + 2] = 0)
MUT(m_ints_n_huge, wr32(r->b + r->ints_n, 0x7fffffffu))
MUT(m_ints_n_past, wr32(r->b + r->ints_n, 1000))
MUT(m_meta_type, r->b[r->type_pos] = 7)
MUT(m_meta_type0, r->b[r->type_pos] = 0)
MUT(m_dtype_f16, r->b[r->t0_dtype] = 2)
MUT(m_dtype_bad, r->b[r->t0_dtype] = 9)
MUT(m_ndim0, r->b[r->t0_dtype + 1] = 0)
MUT(m_ndim5, r->b[r->t0_dtype + 1] = 5)
MUT(m_dup_tensor, r->b[r->t1_name] = 'w')
MUT(m_dup_key, r->b[r->k2_name + 1] = '1')
MUT(m_name_space, r->b[r->t1_name] = ' ')
MUT(m_key_len0, wr16(r->b + 80, 0))
MUT(m_name_len_huge, wr16(r->b + r->t1_name - 2, 0xffff))
MUT(m_flags, wr32(r->b + 12, 1))
MUT(m_meta_off_low, wr64(r->b + 32, 8))
MUT(m_meta_size_huge, wr64(r->b + 40, 0xfffffffffffffff0ull))
MUT(m_idx_off_huge, wr64(r->b + 48, 0xfffffffffffffff8ull))
MUT(m_idx_overlaps_meta, wr64(r->b + 48, rd64(r->b + 48) - 1))
MUT(m_data_size_past, wr64(r->b + 72, rd64(r->b + 72) + 64))
MUT(m_data_off_misaligned, wr64(r->b + 64, rd64(r->b + 64) + 8))
MUT(m_data_off_huge, wr64(r->b + 64, 0xffffffffffffffc0ull))
MUT(m_idx_size_short, wr64(r->b + 56, rd64(r->b + 56) - 8))

static void test_hostile_structures(void **state)
{
    (void)state;
    static const struct {
        mutator fn;
        aibox_status code;
        const char *want;
    } cases[] = {
        {m_t1_offset_past_end, AIBOX_E_FORMAT, "outside the data section"},
        {m_t1_offset_huge, AIBOX_E_FORMAT, "outside the data section"},
        {m_t0_offset_misaligned, AIBOX_E_FORMAT, "not a multiple of 64"},
        {m_t1_overlaps, AIBOX_E_FORMAT, "overlaps"},
        {m_t0_nbytes, AIBOX_E_FORMAT, "needs 24"},
        {m_t0_nbytes_huge, AIBOX_E_FORMAT, "needs 24"},
        {m_dims_overflow, AIBOX_E_FORMAT, "overflows"},
        {m_dim_too_big, AIBOX_E_FORMAT, "at most 2147483647"},
        {m_dim_max, AIBOX_E_FORMAT, "needs 8589934588"},
        {m_meta_count_huge, AIBOX_E_FORMAT, "at most 1000000"},
        {m_meta_count_big, AIBOX_E_FORMAT, "cannot fit"},
        {m_meta_count_short, AIBOX_E_FORMAT, "unused bytes at the end of the metadata"},
        {m_tensor_count_huge, AIBOX_E_FORMAT, "at most 1000000"},
        {m_tensor_count_big, AIBOX_E_FORMAT, "cannot fit"},
        {m_tensor_count_short, AIBOX_E_FORMAT, "unused bytes at the end of the tensor index"},
        {m_str_len_huge, AIBOX_E_FORMAT, "at most 16777216"},
        {m_str_len_past, AIBOX_E_FORMAT, "runs past"},
        {m_str_bad_utf8, AIBOX_E_FORMAT, "UTF-8"},
        {m_str_nul, AIBOX_E_FORMAT, "UTF-8"},
        {m_ints_n_huge, AIBOX_E_FORMAT, "at most 16777216"},
        {m_ints_n_past, AIBOX_E_FORMAT, "run past"},
        {m_meta_type, AIBOX_E_FORMAT, "unknown type 7"},
        {m_meta_type0, AIBOX_E_FORMAT, "unknown type 0"},
        {m_dtype_f16, AIBOX_E_FORMAT, "needs 12 (float16)"}, /* float32's length for a float16 tensor */
        {m_dtype_bad, AIBOX_E_FORMAT, "unknown dtype 9"},
        {m_ndim0, AIBOX_E_FORMAT, "0 dimensions"},
        {m_ndim5, AIBOX_E_FORMAT, "5 dimensions"},
        {m_dup_tensor, AIBOX_E_FORMAT, "duplicate tensor name \"w\""},
        {m_dup_key, AIBOX_E_FORMAT, "duplicate metadata key \"k1\""},
        {m_name_space, AIBOX_E_FORMAT, "printable ASCII"},
        {m_key_len0, AIBOX_E_FORMAT, "0-byte name"},
        {m_name_len_huge, AIBOX_E_FORMAT, "65535-byte name"},
        {m_flags, AIBOX_E_FORMAT, "flags"},
        {m_meta_off_low, AIBOX_E_FORMAT, "metadata section"},
        {m_meta_size_huge, AIBOX_E_FORMAT, "metadata section"},
        {m_idx_off_huge, AIBOX_E_FORMAT, "tensor index"},
        {m_idx_overlaps_meta, AIBOX_E_FORMAT, "tensor index"},
        {m_data_size_past, AIBOX_E_FORMAT, "data section"},
        {m_data_off_misaligned, AIBOX_E_FORMAT, "data section"},
        {m_data_off_huge, AIBOX_E_FORMAT, "data section"},
        {m_idx_size_short, AIBOX_E_FORMAT, "tensor"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        raw r;
        build_raw(&r);
        cases[k].fn(&r);
        fix_crc(r.b, r.n);
        aibox_error e = {0};
        aibox_status st = parse(r.b, r.n, &e);
        if (st != cases[k].code) print_error("case %zu\n", k);
        expect_refusal(st, &e, cases[k].code, "x.aibox", cases[k].want);
    }
}

/* Random multi-byte damage with the CRC repaired, so the structural checks
 * (not the checksum) face it; ASan/UBSan builds make this a bounds test. */
static void test_random_damage_with_valid_crc(void **state)
{
    (void)state;
    raw base;
    build_raw(&base);
    aibox_rng rng;
    aibox_rng_seed(&rng, 12345);
    int accepted = 0;
    for (int it = 0; it < 20000; it++) {
        raw r = base;
        int edits = 1 + (int)aibox_rng_below(&rng, 4);
        for (int k = 0; k < edits; k++) {
            size_t at = 8 + aibox_rng_below(&rng, (uint32_t)(r.n - 12)); /* keep the magic */
            switch (aibox_rng_below(&rng, 3)) {
            case 0: r.b[at] ^= (unsigned char)(1u << aibox_rng_below(&rng, 8)); break;
            case 1: r.b[at] = (unsigned char)aibox_rng_u64(&rng); break;
            default: r.b[at] = (unsigned char)(aibox_rng_below(&rng, 2) ? 0xff : 0); break;
            }
        }
        wr32(r.b + 8, 1);
        wr64(r.b + 16, r.n);
        fix_crc(r.b, r.n);
        aibox_error e = {0};
        aibox_status st = parse(r.b, r.n, &e);
        if (st == AIBOX_OK) accepted++;
        else {
            assert_true(strlen(e.msg) > 0);
            assert_null(strchr(e.msg, '\n'));
        }
    }
    /* Damage to float data or padding is not structural: some pass. */
    assert_true(accepted > 0 && accepted < 20000);
}

/* ------------------------------------------------------------------ saving */
static void test_save_refusals(void **state)
{
    (void)state;
    char p[512];
    aibox_error e = {0};
    path_in(p, sizeof p, "no/such/dir/m.aibox");
    float v[2] = {1, 2};
    aibox_file_tensor t = {"x", 1, {2}, v, AIBOX_FILE_F32};
    expect_refusal(aibox_file_write(p, NULL, 1, &t, &e), &e, AIBOX_E_IO, p, "No such file or directory");

    path_in(p, sizeof p, "bad.aibox");
    aibox_file_tensor bad[] = {
        {"has space", 1, {2}, v, 1}, {NULL, 1, {2}, v, 1}, {"x", 0, {2}, v, 1}, {"x", 5, {2}, v, 1},
        {"x", 1, {-1}, v, 1},        {"x", 1, {2}, NULL, 1}, {"x", 1, {1LL << 31}, v, 1},
        {"x", 4, {0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff}, v, 1},
        {"x", 1, {2}, v, 5},         {"x", 1, {2}, v, -1}, /* dtypes: 0 or 1 float32, 2 float16, 3 int8, 4 int32 */
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
        expect_refusal(aibox_file_write(p, NULL, 1, &bad[k], &e), &e, AIBOX_E_INVALID, p, NULL);
    aibox_file_tensor dup[2] = {{"x", 1, {2}, v, AIBOX_FILE_F32}, {"x", 1, {1}, v, AIBOX_FILE_F16}};
    expect_refusal(aibox_file_write(p, NULL, 2, dup, &e), &e, AIBOX_E_INVALID, p, "duplicate tensor name");
    /* A hand-made list that bypassed the setters is still checked. */
    aibox_meta items[2] = {{.key = "k", .type = AIBOX_META_INT, .n = 1}, {.key = "k", .type = AIBOX_META_INT, .n = 1}};
    aibox_meta_list ml = {items, 2, 2};
    expect_refusal(aibox_file_write(p, &ml, 0, NULL, &e), &e, AIBOX_E_INVALID, p, "duplicate metadata key");
    items[1].key = "bad key";
    expect_refusal(aibox_file_write(p, &ml, 0, NULL, &e), &e, AIBOX_E_INVALID, p, "bad key");
    items[1].key = "k2";
    items[1].type = (aibox_meta_type)9;
    expect_refusal(aibox_file_write(p, &ml, 0, NULL, &e), &e, AIBOX_E_INVALID, p, "unknown type");
    assert_int_equal(aibox_file_write(NULL, NULL, 0, NULL, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_file_write("", NULL, 0, NULL, &e), AIBOX_E_INVALID);

    /* Renaming over a directory fails after writing: the temporary goes. */
    path_in(p, sizeof p, "adir");
    assert_int_equal(mkdir(p, 0755), 0);
    expect_refusal(aibox_file_write(p, NULL, 1, &t, &e), &e, AIBOX_E_IO, p, "rename");
    char names[8][256];
    int n = dir_entries(names, 8);
    assert_int_equal(n, 1);
    assert_string_equal(names[0], "adir");
    rmdir(p);
}

static void test_failed_save_keeps_previous(void **state)
{
    (void)state;
    char p[512];
    path_in(p, sizeof p, "model.aibox");
    aibox_error e = {0};
    float a[3] = {1, 2, 3};
    aibox_meta_list m = {0};
    assert_int_equal(aibox_meta_set_str(&m, "version", "old", &e), AIBOX_OK);
    aibox_file_tensor ta = {"w", 1, {3}, a, AIBOX_FILE_F32};
    assert_int_equal(aibox_file_write(p, &m, 1, &ta, &e), AIBOX_OK);
    size_t old_len;
    unsigned char *old = aibox_test_slurp(p, &old_len);

    /* The replacement: larger than the writer's buffer, so several flushes. */
    enum { BIG = 100000 };
    float *big = malloc(BIG * sizeof *big);
    for (int k = 0; k < BIG; k++) big[k] = (float)k;
    assert_int_equal(aibox_meta_set_str(&m, "version", "new", &e), AIBOX_OK);
    aibox_file_tensor tb[2] = {{"w", 1, {3}, a, AIBOX_FILE_F32}, {"big", 2, {BIG / 8, 8}, big, AIBOX_FILE_F32}};
    char probe[512];
    path_in(probe, sizeof probe, "probe.aibox");
    assert_int_equal(aibox_file_write(probe, &m, 2, tb, &e), AIBOX_OK);
    struct stat sb;
    assert_int_equal(stat(probe, &sb), 0);
    const int64_t new_len = (int64_t)sb.st_size;
    unlink(probe);
    /* Every byte count a full disk could stop at: densely through the
     * header, metadata, index and the end, sparsely through the bulk data. */
    for (int64_t lim = 0; lim < new_len; lim += lim < 1024 || lim > new_len - 256 ? 1 : 8191) {
        aibox_file_write_opts o = {.fail_after_bytes = lim};
        aibox_status st = aibox_file_write_ex(p, &m, 2, tb, &o, &e);
        expect_refusal(st, &e, AIBOX_E_IO, p, "No space left on device");
        assert_non_null(strstr(e.msg, ".tmp."));
        size_t nl;
        unsigned char *nb = aibox_test_slurp(p, &nl);
        assert_int_equal(nl, old_len);
        assert_memory_equal(nb, old, old_len);
        free(nb);
        char names[4][256];
        assert_int_equal(dir_entries(names, 4), 1);
    }
    aibox_file_write_opts exact = {.fail_after_bytes = new_len};
    assert_int_equal(aibox_file_write_ex(p, &m, 2, tb, &exact, &e), AIBOX_OK);
    spit(p, old, old_len);
    aibox_file_write_opts fs = {.fail_after_bytes = -1, .fail_fsync = 1};
    expect_refusal(aibox_file_write_ex(p, &m, 2, tb, &fs, &e), &e, AIBOX_E_IO, p, "sync");
    aibox_file_write_opts rn = {.fail_after_bytes = -1, .fail_rename = 1};
    expect_refusal(aibox_file_write_ex(p, &m, 2, tb, &rn, &e), &e, AIBOX_E_IO, p, "rename");
    size_t nl;
    unsigned char *nb = aibox_test_slurp(p, &nl);
    assert_int_equal(nl, old_len);
    assert_memory_equal(nb, old, old_len);
    free(nb);
    char names[4][256];
    assert_int_equal(dir_entries(names, 4), 1);

    /* Non-root only: a read-only directory refuses the temporary file. */
    if (geteuid() != 0) {
        assert_int_equal(chmod(g_dir, 0555), 0);
        expect_refusal(aibox_file_write(p, &m, 2, tb, &e), &e, AIBOX_E_IO, p, "Permission denied");
        assert_int_equal(chmod(g_dir, 0700), 0);
    }

    /* And a save that succeeds replaces it. */
    assert_int_equal(aibox_file_write(p, &m, 2, tb, &e), AIBOX_OK);
    aibox_file *f = NULL;
    assert_int_equal(aibox_file_read(p, &f, &e), AIBOX_OK);
    assert_string_equal(aibox_meta_find(&f->meta, "version")->s, "new");
    assert_memory_equal(aibox_file_tensor_data(f, "big", NULL, NULL), big, BIG * sizeof *big);
    aibox_file_free(&f);
    assert_int_equal(dir_entries(names, 4), 1);
    unlink(p);
    free(big);
    free(old);
    aibox_meta_list_free(&m);
}

/* A save killed with SIGKILL before its rename leaves its temporary file;
 * the next save into that folder removes it (its process is gone), while
 * temporary files of live processes and look-alike names stay. Before, they
 * stayed for ever (up to 14 MB each). */
static void test_stale_temporaries_swept(void **state)
{
    (void)state;
    char p[512], keep[512], live[512];
    path_in(p, sizeof p, "swept.aibox");
    path_in(keep, sizeof keep, "notes.tmp.txt");
    path_in(live, sizeof live, "other.aibox.tmp.1.abc");
    spit(keep, "x", 1);
    spit(live, "x", 1); /* pid 1 is alive */
    for (int round = 0; round < 3; round++) {
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            aibox_atomic *a = NULL;
            aibox_error e = {0};
            if (aibox_atomic_begin(&a, p, NULL, &e)) _exit(1);
            static unsigned char junk[1 << 20];
            aibox_atomic_write(a, junk, sizeof junk);
            kill(getpid(), SIGKILL); /* as kill -9 during a save */
            _exit(2);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    }
    char names[8][256];
    /* each killed save swept its predecessor's leftover: one remains, with the look-alike and the live one */
    assert_int_equal(dir_entries(names, 8), 3);
    aibox_error e = {0};
    float a[2] = {1, 2};
    aibox_file_tensor t = {"w", 1, {2}, a, AIBOX_FILE_F32};
    assert_int_equal(aibox_file_write(p, NULL, 1, &t, &e), AIBOX_OK);
    int n = dir_entries(names, 8);
    for (int i = 0; i < n; i++) print_message("# after the next save: %s\n", names[i]);
    assert_int_equal(n, 3); /* swept.aibox, notes.tmp.txt, other.aibox.tmp.1.abc */
    unlink(p), unlink(keep), unlink(live);
}

/* ------------------------------------------------------------------ main */
static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/aibox_file_test.XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    rm_tree(g_dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_meta_list),
        cmocka_unit_test(test_roundtrip_exact),
        cmocka_unit_test(test_roundtrip_edges),
        cmocka_unit_test(test_spec_by_hand),
        cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_every_bit_flip),
        cmocka_unit_test(test_appended_bytes),
        cmocka_unit_test(test_foreign_files),
        cmocka_unit_test(test_missing_and_odd_paths),
        cmocka_unit_test(test_file_too_big_for_memory),
        cmocka_unit_test(test_wrong_version),
        cmocka_unit_test(test_hostile_structures),
        cmocka_unit_test(test_random_damage_with_valid_crc),
        cmocka_unit_test(test_save_refusals),
        cmocka_unit_test(test_failed_save_keeps_previous),
        cmocka_unit_test(test_stale_temporaries_swept),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
