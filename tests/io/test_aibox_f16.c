/* float16 (dtype 2) tensors in .aibox files, against references written
 * here from IEEE 754 alone (not lib/ops/half.c):
 *  - reading: a file built byte by byte from FORMAT.md holding all 65536
 *    binary16 patterns; each must read as the value its fields give,
 *    computed in double (subnormals m 2^-24, normals (1024 + m) 2^(e - 25),
 *    infinities, NaNs quiet with sign and payload);
 *  - writing: round to nearest, ties to even, checked on the file's bytes
 *    against the two neighbouring halves of each float in double (ties at
 *    every exponent, subnormals and their ties, underflow to zero, 65504 /
 *    65519.99 / 65520 / overflow to infinity, random floats of every
 *    magnitude), then read back;
 *  - layout: the data length is 2 bytes per element, a file re-saved from
 *    what was read is byte-identical, and 2-byte elements meet the same
 *    bounds checks (lengths, offsets, section ends, overflow) as 4-byte
 *    ones: every truncation, hostile lengths with a valid CRC, random damage;
 *  - models: a value float16 would turn into infinity is refused at save
 *    time, as non-finite values are. */
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
#include <unistd.h>
#include <zlib.h>

#include "aibox.h"
#include "common/check.h"
#include "io/aibox_file.h"
#include "io/model_io.h"
#include "ops/ops.h" /* aibox_f16_path: which conversion the file code takes here */

static char g_dir[256];

static void path_in(char *out, size_t cap, const char *leaf) { snprintf(out, cap, "%s/%s", g_dir, leaf); }

static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const unsigned char *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr16(unsigned char *p, uint16_t v) { p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8); }
static void wr32(unsigned char *p, uint32_t v)
{
    for (int k = 0; k < 4; k++) p[k] = (unsigned char)(v >> 8 * k);
}
static void wr64(unsigned char *p, uint64_t v)
{
    for (int k = 0; k < 8; k++) p[k] = (unsigned char)(v >> 8 * k);
}
static void fix_crc(unsigned char *b, size_t n) { wr32(b + n - 4, (uint32_t)crc32(0, b, (uInt)(n - 4))); }

static float bits_f(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static uint32_t f_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* ------------------------------------------------------------------ references */
/* A finite half's magnitude (sign ignored). */
static double half_mag(uint16_t h) { return fabs(aibox_test_half_value(h)); }

/* Round to nearest, ties to even, as IEEE 754 defines it: the largest half
 * magnitude not above |x| (binary search over the ordered positive
 * patterns) and the next one up, the nearer in double; a tie takes the even
 * pattern. Above 65504 the next one up is 65536 (the exponent unbounded),
 * which means infinity. */
static uint16_t ref_f2h(float f)
{
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    if (isnan(f)) return (uint16_t)(sign | 0x7e00 | (f_bits(f) >> 13 & 0x3ff));
    double a = fabs((double)f);
    if (isinf(f)) return sign | 0x7c00;
    int lo = 0, hi = 0x7bff;
    if (a >= half_mag(0x7bff)) {
        lo = 0x7bff;
    } else {
        while (lo < hi) { /* largest pattern with magnitude <= a */
            int mid = (lo + hi + 1) / 2;
            if (half_mag((uint16_t)mid) <= a) lo = mid;
            else hi = mid - 1;
        }
    }
    double below = half_mag((uint16_t)lo), above = lo == 0x7bff ? 65536.0 : half_mag((uint16_t)(lo + 1));
    double d0 = a - below, d1 = above - a;
    int up = d1 < d0 || (d1 == d0 && (lo & 1));
    return (uint16_t)(sign | (up ? lo + 1 : lo)); /* 0x7bff + 1 = 0x7c00: infinity */
}

/* ------------------------------------------------------------------ a file by hand */
/* FORMAT.md alone: no metadata, tensor "h" float16 of shape dims[0..ndim)
 * whose index claims `nbytes` and whose data are the n given halves, then
 * tensor "f" float32 [2] = {1, -2} at the next multiple of 64. Where the
 * fields live: *at (offset of h's ndim byte; its dims, offset and length
 * follow). */
static unsigned char *build_shaped(const uint64_t *dims, int ndim, uint64_t nbytes, const uint16_t *h, size_t n,
                                   size_t *len, size_t *at)
{
    size_t idx = 80, h_entry = 2 + 1 + 2 + 8 * (size_t)ndim + 16, idx_size = h_entry + (2 + 1 + 2 + 8 + 16);
    size_t data = (idx + idx_size + 63) / 64 * 64, off_f = (data + 2 * n + 63) / 64 * 64, end = off_f + 8;
    *len = end + 4;
    unsigned char *b = calloc(1, *len);
    assert_non_null(b);
    memcpy(b, "AIBOX\0MD", 8);
    wr32(b + 8, 1), wr64(b + 16, *len), wr32(b + 24, 0), wr32(b + 28, 2);
    wr64(b + 32, 80), wr64(b + 40, 0), wr64(b + 48, idx), wr64(b + 56, idx_size);
    wr64(b + 64, data), wr64(b + 72, end - data);
    unsigned char *p = b + idx;
    *at = idx + 4;
    wr16(p, 1), p[2] = 'h', p[3] = 2 /* float16 */, p[4] = (unsigned char)ndim;
    for (int d = 0; d < ndim; d++) wr64(p + 5 + 8 * d, dims[d]);
    wr64(p + 5 + 8 * ndim, data), wr64(p + 13 + 8 * ndim, nbytes);
    p += h_entry;
    wr16(p, 1), p[2] = 'f', p[3] = 1, p[4] = 1, wr64(p + 5, 2), wr64(p + 13, off_f), wr64(p + 21, 8);
    for (size_t i = 0; i < n; i++) wr16(b + data + 2 * i, h[i]);
    wr32(b + off_f, 0x3f800000u), wr32(b + off_f + 4, 0xc0000000u);
    fix_crc(b, *len);
    return b;
}

/* The well-formed case: "h" 1-D of the n halves. */
static unsigned char *build_f16(const uint16_t *h, size_t n, size_t *len, size_t *at)
{
    uint64_t d = n;
    return build_shaped(&d, 1, 2 * (uint64_t)n, h, n, len, at);
}

static void expect_refusal(aibox_status st, const aibox_error *e, aibox_status code, const char *want)
{
    if (st != code || (want && !strstr(e->msg, want)))
        print_error("status %d (want %d), message: %s (want \"%s\")\n", st, code, e->msg, want ? want : "");
    assert_int_equal(st, code);
    if (want) assert_non_null(strstr(e->msg, want));
    assert_null(strchr(e->msg, '\n'));
}

/* ------------------------------------------------------------------ reading */
/* Every one of the 65536 patterns reads as the value its fields give. */
static void test_read_every_half(void **state)
{
    (void)state;
    uint16_t *h = malloc(sizeof(uint16_t) * 65536);
    for (int i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    size_t len, idx;
    unsigned char *b = build_f16(h, 65536, &len, &idx);
    aibox_error e = {0};
    aibox_file *f = NULL;
    assert_int_equal(aibox_file_read_mem(b, len, "hand", &f, &e), AIBOX_OK);
    assert_int_equal(f->n_tensors, 2);
    const aibox_file_entry *t = &f->tensors[0];
    assert_int_equal(t->dtype, AIBOX_FILE_F16);
    assert_int_equal(t->count, 65536);
    assert_int_equal((uintptr_t)t->data % 64, 0);
    long finite = 0, nans = 0;
    for (int i = 0; i < 65536; i++) {
        int ex = i >> 10 & 0x1f, m = i & 0x3ff, neg = !!(i & 0x8000);
        float got = t->data[i];
        assert_int_equal(signbit(got) != 0, neg);
        if (ex == 0x1f && m) { /* NaN: quiet, its payload kept in the top mantissa bits */
            assert_true(isnan(got));
            assert_int_equal(f_bits(got) & 0x7fffffff, 0x7fc00000u | (uint32_t)m << 13);
            nans++;
        } else if (ex == 0x1f) {
            assert_true(isinf(got));
        } else {
            double want = (neg ? -1 : 1) * half_mag((uint16_t)i);
            if ((double)got != want) print_error("half 0x%04x: read %.9g, want %.9g\n", i, (double)got, want);
            assert_true((double)got == want);
            finite++;
        }
    }
    assert_int_equal(finite, 2 * 31 * 1024);
    assert_int_equal(nans, 2 * 1023);
    assert_int_equal(f->tensors[1].dtype, AIBOX_FILE_F32); /* the float32 tensor after it is untouched */
    assert_true(f->tensors[1].data[0] == 1.0f && f->tensors[1].data[1] == -2.0f);

    /* written back as float16: the same bytes (NaNs in their quiet form) */
    char p[512];
    path_in(p, sizeof p, "every.aibox");
    aibox_file_tensor ts[2] = {{"h", 1, {65536}, t->data, AIBOX_FILE_F16},
                               {"f", 1, {2}, f->tensors[1].data, AIBOX_FILE_F32}};
    assert_int_equal(aibox_file_write(p, NULL, 2, ts, &e), AIBOX_OK);
    size_t n2;
    unsigned char *b2 = aibox_test_slurp(p, &n2);
    assert_int_equal(n2, len);
    uint64_t data = rd64(b2 + 64);
    for (int i = 0; i < 65536; i++) {
        int nan = (i & 0x7c00) == 0x7c00 && (i & 0x3ff);
        assert_int_equal(rd16(b2 + data + 2 * (size_t)i), nan ? i | 0x200 : i);
        if (!nan) assert_int_equal(rd16(b + data + 2 * (size_t)i), rd16(b2 + data + 2 * (size_t)i));
    }
    for (int i = 0; i < 65536; i++) /* the hand-built file with quiet NaNs is exactly the library's */
        if ((i & 0x7c00) == 0x7c00 && (i & 0x3ff)) h[i] = (uint16_t)(i | 0x200);
    free(b);
    b = build_f16(h, 65536, &len, &idx);
    assert_memory_equal(b, b2, len);

    /* from disk, and the index-only reader: dtype and count, no data */
    aibox_file *g = NULL;
    assert_int_equal(aibox_file_read(p, &g, &e), AIBOX_OK);
    assert_memory_equal(g->tensors[0].data, t->data, sizeof(float) * 65536);
    aibox_file_free(&g);
    assert_int_equal(aibox_file_read_index(p, &g, &e), AIBOX_OK);
    assert_int_equal(g->tensors[0].dtype, AIBOX_FILE_F16);
    assert_int_equal(g->tensors[0].count, 65536);
    assert_null(g->tensors[0].data);
    assert_null(g->wide);
    aibox_file_free(&g);
    aibox_file_free(&f);
    free(b), free(b2), free(h);
    unlink(p);
}

/* ------------------------------------------------------------------ writing */
/* Floats to float16 through a file: the stored bits are the reference's. */
static void test_write_rounds_to_nearest_even(void **state)
{
    (void)state;
    enum { CAP = 1 << 20 };
    float *x = malloc(sizeof(float) * CAP);
    size_t n = 0;
    static const uint32_t edges[] = {
        0x00000000, 0x80000000, 0x00000001, 0x807fffff, /* zeros, float subnormals: 0 */
        0x33000000, 0x33000001, 0x32ffffff, 0xb3000000, /* 2^-25: the tie between 0 and 2^-24; just off it */
        0x33800000, 0x33c00000, 0x34200000, 0x34600000, /* 2^-24; ties 1|2, 2|3, 3|4 (x 2^-24) */
        0x387fc000, 0x387fe000, 0x387fdfff, 0x387fe001, /* largest subnormal; its tie with the smallest normal */
        0x38800000, 0x3f800000, 0x3f801000, 0x3f803000, /* 2^-14, 1, ties 1 | 1+2^-10 and 1+2^-9 | 1+3*2^-10 */
        0x3f801001, 0x3f800fff, 0x3fffffff, 0x477fe000, /* just off a tie; 2 - 2^-23 (carry); 65504 */
        0x477fefff, 0x477ff000, 0xc77ff000, 0x477ff001, /* 65519.998 -> 65504; 65520 ties to infinity */
        0x47800000, 0x7f7fffff, 0xff7fffff, 0x7f800000, /* overflow to infinity; infinities */
        0xff800000, 0x7fc00000, 0xffc00000, 0x7fa02000, /* NaNs: quiet, top payload bits kept */
    };
    for (size_t i = 0; i < sizeof edges / sizeof *edges; i++) x[n++] = bits_f(edges[i]);
    /* at every half exponent (and below): each tie, a bit either side, and random low bits */
    aibox_rng rng;
    aibox_rng_seed(&rng, 16);
    long ties = 0;
    for (int h = 0; h < 0x7bff; h += 7, ties += 2) {
        double lo = half_mag((uint16_t)h), hi = half_mag((uint16_t)(h + 1)), mid = (lo + hi) / 2;
        float m = (float)mid; /* exact: a half and its neighbour differ in 11 bits */
        assert_true((double)m == mid);
        x[n++] = m, x[n++] = nextafterf(m, 0), x[n++] = nextafterf(m, INFINITY), x[n++] = -m;
        x[n++] = (float)(lo + (hi - lo) * aibox_rng_uniform(&rng));
    }
    while (n < CAP) { /* random bit patterns, every magnitude */
        uint32_t u = (uint32_t)aibox_rng_u64(&rng);
        x[n++] = bits_f(u);
    }
    char p[512];
    path_in(p, sizeof p, "round.aibox");
    aibox_error e = {0};
    aibox_file_tensor t = {"x", 2, {CAP / 1024, 1024}, x, AIBOX_FILE_F16};
    assert_int_equal(aibox_file_write(p, NULL, 1, &t, &e), AIBOX_OK);
    size_t len;
    unsigned char *b = aibox_test_slurp(p, &len);
    uint64_t data = rd64(b + 64);
    assert_int_equal(rd64(b + 72), 2 * (uint64_t)CAP); /* 2 bytes an element */
    assert_int_equal(len, data + 2 * (size_t)CAP + 4);
    aibox_file *f = NULL;
    assert_int_equal(aibox_file_read(p, &f, &e), AIBOX_OK);
    for (size_t i = 0; i < n; i++) {
        uint16_t want = ref_f2h(x[i]), got = rd16(b + data + 2 * i);
        if (got != want)
            print_error("float 0x%08x (%.9g): stored 0x%04x, reference 0x%04x\n", f_bits(x[i]), (double)x[i], got,
                        want);
        assert_int_equal(got, want);
        float back = f->tensors[0].data[i];
        if (isnan(x[i])) assert_true(isnan(back));
        else if ((want & 0x7c00) == 0x7c00) assert_true(isinf(back) && signbit(back) == signbit(x[i]));
        else assert_true((double)fabsf(back) == half_mag(want) && signbit(back) == signbit(x[i]));
    }
    print_message("float -> float16 in the file: %zu values bit-exact, %ld of them exact ties (path %s)\n", n, ties,
                  aibox_f16_path(aibox_cpu_features()));
    aibox_file_free(&f);
    free(b), free(x);
    unlink(p);
}

/* Sizes, byte-identical re-saves, and float16 beside float32 in one file. */
static void test_sizes_and_resave(void **state)
{
    (void)state;
    enum { N = 1000 };
    float v[N], w[3] = {1, 2, 3};
    for (int i = 0; i < N; i++) v[i] = (float)sin(i * 0.1) * 100;
    char p32[512], p16[512], again[512];
    path_in(p32, sizeof p32, "s32.aibox"), path_in(p16, sizeof p16, "s16.aibox"), path_in(again, sizeof again, "s2.aibox");
    aibox_error e = {0};
    aibox_file_tensor t[2] = {{"w", 1, {3}, w, 0}, {"v", 2, {10, 100}, v, AIBOX_FILE_F32}};
    assert_int_equal(aibox_file_write(p32, NULL, 2, t, &e), AIBOX_OK);
    t[1].dtype = AIBOX_FILE_F16;
    assert_int_equal(aibox_file_write(p16, NULL, 2, t, &e), AIBOX_OK);
    struct stat s32, s16;
    assert_int_equal(stat(p32, &s32), 0);
    assert_int_equal(stat(p16, &s16), 0);
    print_message("1000 values: %lld bytes as float32, %lld as float16\n", (long long)s32.st_size,
                  (long long)s16.st_size);
    assert_int_equal(s32.st_size - s16.st_size, 2 * N);
    aibox_file *f = NULL;
    assert_int_equal(aibox_file_read(p16, &f, &e), AIBOX_OK);
    assert_int_equal(f->tensors[0].dtype, AIBOX_FILE_F32);
    assert_int_equal(f->tensors[1].dtype, AIBOX_FILE_F16);
    assert_ptr_equal(f->tensors[1].data, f->wide); /* the float32 copy; float32 tensors stay in the blob */
    assert_true((const unsigned char *)f->tensors[0].data > (const unsigned char *)f->blob);
    for (int i = 0; i < N; i++) assert_true(fabsf(f->tensors[1].data[i] - v[i]) <= fabsf(v[i]) * 0x1p-11f);
    aibox_file_tensor back[2];
    for (int k = 0; k < 2; k++) {
        back[k] = (aibox_file_tensor){f->tensors[k].name, f->tensors[k].ndim, {0}, f->tensors[k].data,
                                      f->tensors[k].dtype};
        memcpy(back[k].dims, f->tensors[k].dims, sizeof back[k].dims);
    }
    assert_int_equal(aibox_file_write(again, &f->meta, 2, back, &e), AIBOX_OK);
    size_t n1, n2;
    unsigned char *b1 = aibox_test_slurp(p16, &n1), *b2 = aibox_test_slurp(again, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1); /* float16 values survive float16 storage unchanged */
    /* an empty float16 tensor has no bytes */
    float *none = NULL;
    aibox_file_tensor z = {"z", 2, {0, 7}, none, AIBOX_FILE_F16};
    assert_int_equal(aibox_file_write(again, NULL, 1, &z, &e), AIBOX_OK);
    aibox_file_free(&f);
    assert_int_equal(aibox_file_read(again, &f, &e), AIBOX_OK);
    assert_int_equal(f->tensors[0].count, 0);
    assert_int_equal(f->tensors[0].dtype, AIBOX_FILE_F16);
    aibox_file_free(&f);
    free(b1), free(b2);
    unlink(p32), unlink(p16), unlink(again);
}

/* ------------------------------------------------------------------ damage */
/* Every truncation, and bounds with 2-byte elements (CRC repaired so the
 * structural checks face them). */
static void test_hostile_f16(void **state)
{
    (void)state;
    uint16_t h[37];
    for (int i = 0; i < 37; i++) h[i] = (uint16_t)(0x3c00 + i);
    size_t len, idx;
    unsigned char *base = build_f16(h, 37, &len, &idx);
    aibox_error e = {0};
    aibox_file *f = NULL;
    assert_int_equal(aibox_file_read_mem(base, len, "x.aibox", &f, &e), AIBOX_OK);
    assert_true(f->tensors[0].data[36] == 1.0f + 36 / 1024.0f);
    aibox_file_free(&f);
    for (size_t k = 0; k < len; k++) {
        aibox_status st = aibox_file_read_mem(base, k, "x.aibox", &f, &e);
        expect_refusal(st, &e, AIBOX_E_CORRUPT, k == 0 ? "empty" : "truncated");
        assert_null(f);
    }
    for (size_t k = 0; k < 8 * len; k += 7) { /* a flipped bit anywhere: the checksum */
        unsigned char *b = malloc(len);
        memcpy(b, base, len);
        b[k / 8] ^= (unsigned char)(1u << k % 8);
        assert_true(aibox_file_read_mem(b, len, "x.aibox", &f, &e) != AIBOX_OK);
        assert_null(f);
        free(b);
    }
    /* h: ndim at idx, its dim at idx + 1, offset at idx + 9, length at idx + 17; f's offset at idx + 38 */
    uint64_t data = rd64(base + 64);
    static const struct {
        int what; /* 0: length, 1: dim, 2: offset (from the data section's start), 3: data section size, 4: f's offset */
        int64_t v;
        const char *want;
    } cases[] = {
        {0, 76, "needs 74 (float16)"},
        {0, 148, "needs 74 (float16)"}, /* float32's length */
        {0, 73, "needs 74 (float16)"},
        {0, -2, "needs 74 (float16)"},
        {1, 38, "needs 76 (float16)"},
        {1, 0x7fffffff, "needs 4294967294 (float16)"},
        {2, -64, "outside the data section"},
        {2, 64, "outside the data section"}, /* h would end 2 bytes past the section */
        {4, 64, "overlaps"},                 /* f inside h's 74 bytes */
        {2, 1 << 20, "outside the data section"},
        {3, 72, "outside the data section"}, /* the section ends one element before h does */
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        unsigned char *b = malloc(len);
        memcpy(b, base, len);
        switch (cases[c].what) {
        case 0: wr64(b + idx + 17, (uint64_t)cases[c].v); break;
        case 1: wr64(b + idx + 1, (uint64_t)cases[c].v); break;
        case 2: wr64(b + idx + 9, data + (uint64_t)cases[c].v); break;
        case 4: wr64(b + idx + 38, data + (uint64_t)cases[c].v); break;
        default: wr64(b + 72, (uint64_t)cases[c].v); break;
        }
        fix_crc(b, len);
        expect_refusal(aibox_file_read_mem(b, len, "x.aibox", &f, &e), &e, AIBOX_E_FORMAT, cases[c].want);
        assert_null(f);
        free(b);
    }
    /* shapes whose bytes overflow 64 bits, or whose float32 copy would not
     * fit in memory although the float16 bytes would: refused before any
     * allocation */
    static const uint64_t big[2][3] = {{0x7fffffff, 0x7fffffff, 3}, {0x7fffffff, 0x7fffffff, 2}};
    for (int k = 0; k < 2; k++) {
        size_t l2, at2;
        unsigned char *b = build_shaped(big[k], 3, 74, h, 37, &l2, &at2);
        expect_refusal(aibox_file_read_mem(b, l2, "x.aibox", &f, &e), &e, AIBOX_E_FORMAT, "too large");
        free(b);
    }
    /* random damage with a valid CRC: refused with one line, or read within bounds */
    aibox_rng rng;
    aibox_rng_seed(&rng, 2);
    int accepted = 0;
    volatile float sink = 0; /* reads the compiler must keep */
    for (int it = 0; it < 20000; it++) {
        unsigned char *b = malloc(len);
        memcpy(b, base, len);
        int edits = 1 + (int)aibox_rng_below(&rng, 4);
        for (int k = 0; k < edits; k++) {
            size_t at = aibox_rng_below(&rng, 2) ? idx - 4 + aibox_rng_below(&rng, 58) /* the index, often */
                                                 : 24 + aibox_rng_below(&rng, (uint32_t)(len - 28));
            b[at] = (unsigned char)aibox_rng_u64(&rng);
        }
        fix_crc(b, len);
        aibox_status st = aibox_file_read_mem(b, len, "x.aibox", &f, &e);
        if (!st) {
            accepted++;
            for (int t = 0; t < f->n_tensors; t++) /* every element is readable (ASan builds check) */
                for (size_t j = 0; j < f->tensors[t].count; j++) sink = f->tensors[t].data[j];
            aibox_file_free(&f);
        } else {
            assert_null(strchr(e.msg, '\n'));
        }
        free(b);
    }
    assert_true(accepted > 0 && accepted < 20000);
    (void)sink;
    free(base);
}

/* ------------------------------------------------------------------ models */
/* A value float16 storage would make infinite is refused when saving, as a
 * non-finite one is; the largest half and what rounds to it pass. */
static void test_model_refuses_beyond_half(void **state)
{
    (void)state;
    aibox_model *m = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_model_create(&m, 1, 4, 4, &e), AIBOX_OK);
    aibox_dense(m, aibox_flatten(m, 0), 2, 1);
    assert_int_equal(aibox_model_finish(m, 1, &e), AIBOX_OK);
    char p[512];
    path_in(p, sizeof p, "model.aibox");
    float v[3] = {1, -65504, 65519.99f};
    aibox_file_tensor x = {"extra.half", 1, {3}, v, AIBOX_FILE_F16};
    assert_int_equal(aibox_model_save_ex(m, p, 1, &x, &e), AIBOX_OK);
    aibox_model *l = NULL;
    aibox_file *f = NULL;
    assert_int_equal(aibox_model_load_ex(&l, p, &f, &e), AIBOX_OK);
    const float *got = aibox_file_tensor_data(f, "extra.half", NULL, NULL);
    assert_true(got[0] == 1 && got[1] == -65504 && got[2] == 65504);
    aibox_file_free(&f);
    aibox_model_free(&l);
    struct stat before;
    assert_int_equal(stat(p, &before), 0);
    v[2] = 65520;
    expect_refusal(aibox_model_save_ex(m, p, 1, &x, &e), &e, AIBOX_E_INVALID, "beyond float16");
    v[2] = -1e30f;
    expect_refusal(aibox_model_save_ex(m, p, 1, &x, &e), &e, AIBOX_E_INVALID, "index 2");
    v[2] = NAN;
    expect_refusal(aibox_model_save_ex(m, p, 1, &x, &e), &e, AIBOX_E_INVALID, "non-finite");
    struct stat after;
    assert_int_equal(stat(p, &after), 0);
    assert_int_equal(before.st_size, after.st_size); /* the previous file stays */
    /* float32 storage keeps 1e30 */
    v[2] = 1e30f;
    x.dtype = AIBOX_FILE_F32;
    assert_int_equal(aibox_model_save_ex(m, p, 1, &x, &e), AIBOX_OK);
    aibox_model_free(&m);
    unlink(p);
}

static int setup(void **state)
{
    (void)state;
    return aibox_test_mkdtemp(g_dir, sizeof g_dir, "f16");
}

static int teardown(void **state)
{
    (void)state;
    return aibox_test_rm_rf(g_dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_every_half),
        cmocka_unit_test(test_write_rounds_to_nearest_even),
        cmocka_unit_test(test_sizes_and_resave),
        cmocka_unit_test(test_hostile_f16),
        cmocka_unit_test(test_model_refuses_beyond_half),
    };
    return cmocka_run_group_tests_name("io/aibox_f16", tests, setup, teardown);
}
