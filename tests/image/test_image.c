/* Images: decoding every format stb reads (fixtures made at run time by
 * stb_image_write, by hand with zlib, or embedded when tiny), refusals of
 * empty, foreign, truncated and oversized inputs, file loading, channel
 * conversion, the three resize modes against their formulas, encoders and
 * atomic writes. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <zlib.h>

#include <stb_image_write.h>

#include "aibox.h"
#include "image/stb_guard.h" /* aibox_stb_rewrite: what stb is given */

static char g_dir[64];

/* ------------------------------------------------------------------ helpers */

/* A growable byte buffer; also stb_image_write's callback target. */
typedef struct {
    uint8_t *p;
    size_t n;
} buf;

static void buf_add(buf *b, const void *data, size_t n)
{
    b->p = realloc(b->p, b->n + n + 1);
    assert_non_null(b->p);
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void buf_put(void *ctx, void *data, int size) { buf_add(ctx, data, (size_t)size); }

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* One PNG chunk with its CRC-32 (over type and data). */
static void png_chunk(buf *b, const char *type, const uint8_t *data, uint32_t n)
{
    uint8_t head[8];
    put_be32(head, n);
    memcpy(head + 4, type, 4);
    buf_add(b, head, 8);
    if (n) buf_add(b, data, n);
    uint32_t crc = (uint32_t)crc32(0, (const Bytef *)type, 4);
    if (n) crc = (uint32_t)crc32(crc, data, n);
    uint8_t c[4];
    put_be32(c, crc);
    buf_add(b, c, 4);
}

/* A PNG by hand: rows of `row_bytes` raw sample bytes (big-endian for 16
 * bits), filter 0 on each; palette optional (color type 3). */
static buf png_by_hand(uint32_t w, uint32_t h, int depth, int color_type, const uint8_t *rows, size_t row_bytes,
                       const uint8_t *plte, int plte_n)
{
    buf b = {0};
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    buf_add(&b, sig, 8);
    uint8_t ihdr[13] = {0};
    put_be32(ihdr, w);
    put_be32(ihdr + 4, h);
    ihdr[8] = (uint8_t)depth;
    ihdr[9] = (uint8_t)color_type;
    png_chunk(&b, "IHDR", ihdr, 13);
    if (plte) png_chunk(&b, "PLTE", plte, (uint32_t)plte_n * 3);
    if (rows) {
        size_t raw_n = (row_bytes + 1) * h;
        uint8_t *raw = malloc(raw_n);
        assert_non_null(raw);
        for (uint32_t y = 0; y < h; y++) {
            raw[y * (row_bytes + 1)] = 0;
            memcpy(raw + y * (row_bytes + 1) + 1, rows + y * row_bytes, row_bytes);
        }
        uLongf zn = compressBound(raw_n);
        uint8_t *z = malloc(zn);
        assert_non_null(z);
        assert_int_equal(compress(z, &zn, raw, raw_n), Z_OK);
        png_chunk(&b, "IDAT", z, (uint32_t)zn);
        free(z);
        free(raw);
        png_chunk(&b, "IEND", NULL, 0);
    }
    return b;
}

static void fill_pattern(uint8_t *p, int w, int h, int c, unsigned seed)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++) p[((size_t)y * w + x) * c + k] = (uint8_t)(x * 37 + y * 91 + k * 53 + seed * 7);
}

/* Smooth colours for lossy codecs. */
static void fill_smooth(uint8_t *p, int w, int h, int c)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++)
                p[((size_t)y * w + x) * c + k] = (uint8_t)(k == 0 ? x * 255 / (w - 1) : k == 1 ? y * 255 / (h - 1)
                                                                                        : 128 + (x - y));
}

static aibox_image make_image(int w, int h, int c, unsigned seed)
{
    aibox_image im = {w, h, c, malloc((size_t)w * h * c)};
    assert_non_null(im.data);
    fill_pattern(im.data, w, h, c, seed);
    return im;
}

static int max_abs_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
    int m = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        if (d > m) m = d;
    }
    return m;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void path_in(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", g_dir, name); }

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static buf read_whole(const char *path)
{
    buf b = {0};
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t tmp[4096];
    size_t r;
    while ((r = fread(tmp, 1, sizeof tmp, f)) > 0) buf_add(&b, tmp, r);
    fclose(f);
    return b;
}

/* Entries of a directory other than . and .. */
static int dir_count(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* Decodes and checks status and a message fragment. */
static void expect_refusal(const void *bytes, size_t n, long long max_pixels, aibox_status want, const char *frag)
{
    aibox_image im = {7, 7, 7, (uint8_t *)1}; /* garbage: must be cleared */
    aibox_error err = {0};
    aibox_status st = aibox_image_decode(&im, bytes, n, "probe.img", max_pixels, &err);
    if (st != want || !strstr(err.msg, frag) || !strstr(err.msg, "probe.img"))
        fprintf(stderr, "got status %d, message \"%s\"; want %d with \"%s\"\n", st, err.msg, want, frag);
    assert_int_equal(st, want);
    assert_int_equal(err.code, want);
    assert_non_null(strstr(err.msg, frag));
    assert_non_null(strstr(err.msg, "probe.img"));
    assert_null(im.data);
    assert_int_equal(im.width, 0);
}

static aibox_image decode_ok(const void *bytes, size_t n)
{
    aibox_image im;
    aibox_error err = {0};
    aibox_status st = aibox_image_decode(&im, bytes, n, "fixture", 0, &err);
    if (st) fprintf(stderr, "decode: %s\n", err.msg);
    assert_int_equal(st, AIBOX_OK);
    assert_non_null(im.data);
    return im;
}

/* ------------------------------------------------------------------ fixtures */

/* 4x2 GIF89a, 4-colour palette (red, green, blue, white), two frames: the
 * first is 0 1 2 3 / 3 2 1 0, the second all white. LZW written by a
 * 20-line encoder; decoded by stb as RGBA. */
static const char GIF_HEX[] =
    "47494638396104000200810000ff000000ff000000ffffffff2c00000000040002000002054434230105002c0000000004000200"
    "0002039c6f05003b";

/* 16x8 progressive JPEG (10 scans, SOF2) of R = 16x, G = 32y, B = 255 - 16x:
 * stb_image_write at quality 95, then `jpegtran -progressive -optimize
 * -copy none`. */
static const char PROGRESSIVE_JPEG_HEX[] =
    "ffd8ffe000104a46494600010100000100010000ffdb004300020101010101020101010202020202040302020202050404030406"
    "0506060605060606070908060709070606080b08090a0a0a0a0a06080b0c0b0a0c090a0a0affdb00430102020202020205030305"
    "0a0706070a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a"
    "0a0affc20011080008001003011100021101031101ffc40014000100000000000000000000000000000006ffc400150101010000"
    "0000000000000000000000000708ffda000c0301000210031000000122d472be53a53fffc4001610000300000000000000000000"
    "00000000000407ffda00080101000105024a54252a3fffc40017110100030000000000000000000000000006002232ffda000801"
    "0301013f012af736855ee6d3ffc40017110100030000000000000000000000000006002232ffda0008010201013f0160c3568c18"
    "6ad3ffc4001610000300000000000000000000000000000034a1ffda0008010100063f025a0b43ffc40015100101000000000000"
    "00000000000000000031ffda0008010100013f219898ffda000c030100020003000000109fffc400161100030000000000000000"
    "0000000000000041a1ffda0008010301013f1092c92cffc4001611000300000000000000000000000000000041a1ffda00080102"
    "01013f10b8cb8cffc40014100100000000000000000000000000000010ffda0008010100013f100a5fffd9";

static buf from_hex(const char *hex)
{
    buf b = {0};
    size_t n = strlen(hex) / 2;
    b.p = malloc(n);
    assert_non_null(b.p);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        b.p[i] = (uint8_t)v;
    }
    b.n = n;
    return b;
}

static buf encode_jpeg(const aibox_image *im, int quality)
{
    buf b = {0};
    aibox_error err = {0};
    assert_int_equal(aibox_image_encode_jpg(im, quality, &b.p, &b.n, &err), AIBOX_OK);
    assert_true(b.n > 100);
    return b;
}

/* ------------------------------------------------------------------ decoding */

static void test_png_8bit(void **state)
{
    (void)state;
    const int chans[] = {1, 3, 4};
    for (int i = 0; i < 3; i++) {
        aibox_image src = make_image(13, 7, chans[i], (unsigned)i);
        buf b = {0};
        aibox_error err = {0};
        assert_int_equal(aibox_image_encode_png(&src, &b.p, &b.n, &err), AIBOX_OK);
        assert_memory_equal(b.p, "\x89PNG", 4);
        aibox_image got = decode_ok(b.p, b.n);
        assert_int_equal(got.width, 13);
        assert_int_equal(got.height, 7);
        assert_int_equal(got.channels, chans[i]);
        assert_memory_equal(got.data, src.data, (size_t)13 * 7 * chans[i]);
        aibox_image_free(&got);
        aibox_image_free(&src);
        free(b.p);
    }
    /* grey + alpha has no aibox layout: it comes back as RGBA, nothing lost */
    uint8_t ga[5 * 3 * 2];
    fill_pattern(ga, 5, 3, 2, 9);
    buf b = {0};
    assert_true(stbi_write_png_to_func(buf_put, &b, 5, 3, 2, ga, 10));
    aibox_image got = decode_ok(b.p, b.n);
    assert_int_equal(got.channels, 4);
    for (int i = 0; i < 15; i++) {
        for (int k = 0; k < 3; k++) assert_int_equal(got.data[4 * i + k], ga[2 * i]);
        assert_int_equal(got.data[4 * i + 3], ga[2 * i + 1]);
    }
    aibox_image_free(&got);
    free(b.p);
}

static void test_png_16bit(void **state)
{
    (void)state;
    /* samples around the rounding edges: round(v * 255 / 65535) = round(v / 257) */
    const uint16_t vals[] = {0, 1, 128, 129, 255, 256, 257, 385, 386, 32767, 32896, 32897, 65278, 65279, 65534, 65535};
    const int n = (int)(sizeof vals / sizeof vals[0]);
    /* grey, 16 x 1 */
    uint8_t row[2 * 16];
    for (int i = 0; i < n; i++) row[2 * i] = (uint8_t)(vals[i] >> 8), row[2 * i + 1] = (uint8_t)vals[i];
    buf b = png_by_hand((uint32_t)n, 1, 16, 0, row, sizeof row, NULL, 0);
    aibox_image got = decode_ok(b.p, b.n);
    assert_int_equal(got.channels, 1);
    assert_int_equal(got.width, n);
    int differs_from_high_byte = 0;
    for (int i = 0; i < n; i++) {
        assert_int_equal(got.data[i], (int)lround(vals[i] / 257.0));
        differs_from_high_byte += got.data[i] != vals[i] >> 8;
    }
    assert_true(differs_from_high_byte > 0); /* rounded, not stb's high-byte cut */
    aibox_image_free(&got);
    free(b.p);
    /* RGB, 2 x 3, 16 bits per sample */
    uint8_t rgb[3][2 * 3 * 2];
    for (int i = 0; i < 18; i++) {
        uint16_t v = vals[(i * 5) % n];
        rgb[i / 6][2 * (i % 6)] = (uint8_t)(v >> 8), rgb[i / 6][2 * (i % 6) + 1] = (uint8_t)v;
    }
    b = png_by_hand(2, 3, 16, 2, &rgb[0][0], 12, NULL, 0);
    got = decode_ok(b.p, b.n);
    assert_int_equal(got.channels, 3);
    assert_int_equal(got.height, 3);
    for (int i = 0; i < 18; i++) assert_int_equal(got.data[i], (int)lround(vals[(i * 5) % n] / 257.0));
    aibox_image_free(&got);
    free(b.p);
}

static void test_png_palette(void **state)
{
    (void)state;
    const uint8_t plte[] = {10, 20, 30, 200, 100, 0, 255, 255, 255};
    const uint8_t idx[] = {0, 1, 2, 2, 1, 0}; /* 3 x 2, 8-bit indices */
    buf b = png_by_hand(3, 2, 8, 3, idx, 3, plte, 3);
    aibox_image got = decode_ok(b.p, b.n);
    assert_int_equal(got.channels, 3);
    for (int i = 0; i < 6; i++) assert_memory_equal(got.data + 3 * i, plte + 3 * idx[i], 3);
    aibox_image_free(&got);
    free(b.p);
}

/* Fills a stretch of the stack with a marker, so that a decoder reading
 * stack bytes it never wrote would see it instead of the zeros a fresh stack
 * usually holds. */
static __attribute__((noinline)) void poison_stack_with(uint8_t v)
{
    volatile uint8_t junk[1 << 16];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = v;
}

static void poison_stack(void) { poison_stack_with(0xA5); }

/* Pixel indices past the end of PLTE (the PNG specification calls the file
 * wrong; libpng pads its palette with black). stb expands them through a
 * stack palette filled only up to PLTE's count, so they used to copy stack
 * bytes into the image: they must come out opaque black, every time, at
 * every bit depth, with or without tRNS. */
static void test_png_palette_index_past_plte(void **state)
{
    (void)state;
    const uint8_t plte[] = {10, 20, 30, 200, 100, 0};
    const uint8_t idx8[] = {0, 1, 2, 200, 255, 1};
    const uint8_t idx4[] = {0x1F, 0x20}; /* 4-bit: 1, 15, 2, 0 (3 x 1, rows padded to bytes) */
    struct {
        int depth;
        const uint8_t *rows;
        size_t row_bytes;
        int w;
        const uint8_t *want; /* 3 bytes per pixel */
    } cases[] = {
        {8, idx8, 6, 6, (const uint8_t[]){10, 20, 30, 200, 100, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 200, 100, 0}},
        {4, idx4, 2, 3, (const uint8_t[]){200, 100, 0, 0, 0, 0, 0, 0, 0}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        buf b = png_by_hand((uint32_t)cases[k].w, 1, cases[k].depth, 3, cases[k].rows, cases[k].row_bytes, plte, 2);
        poison_stack();
        aibox_image got = decode_ok(b.p, b.n);
        assert_int_equal(got.channels, 3);
        assert_memory_equal(got.data, cases[k].want, (size_t)cases[k].w * 3);
        aibox_image_free(&got);
        free(b.p);
    }

    /* with tRNS (entry 0 transparent): RGBA, padded entries opaque */
    buf b = png_by_hand(6, 1, 8, 3, NULL, 0, plte, 2);
    const uint8_t trns[] = {0};
    png_chunk(&b, "tRNS", trns, 1);
    buf body = png_by_hand(6, 1, 8, 3, idx8, 6, plte, 2); /* its IDAT and IEND: after the signature, IHDR, PLTE */
    size_t head = 8 + (12 + 13) + (12 + 6);
    buf_add(&b, body.p + head, body.n - head);
    free(body.p);
    poison_stack();
    aibox_image got = decode_ok(b.p, b.n);
    assert_int_equal(got.channels, 4);
    const uint8_t want[] = {10, 20, 30, 0, 200, 100, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255, 200, 100, 0, 255};
    assert_memory_equal(got.data, want, sizeof want);
    aibox_image_free(&got);

    /* a tRNS longer than the palette stays refused, as stb refuses it */
    buf c = png_by_hand(6, 1, 8, 3, NULL, 0, plte, 2);
    const uint8_t trns3[] = {0, 0, 0};
    png_chunk(&c, "tRNS", trns3, 3);
    buf_add(&c, b.p + head + 12 + 1, b.n - head - 12 - 1);
    expect_refusal(c.p, c.n, 0, AIBOX_E_FORMAT, "tRNS has more entries than the palette");
    free(c.p);
    free(b.p);
}

/* Empty IDAT chunks (allowed by the PNG specification) before the first one
 * with data made stb compute NULL + 0, undefined behaviour (fuzz_image under
 * UBSan; tests/fuzz/corpus/image/ub-stb-png-empty-idat.png). stb is given a
 * copy without them, for 8-bit, palette and 16-bit files alike: the copy must
 * be the file without its empty chunks byte for byte (a palette padded as
 * test_png_palette_index_past_plte says), and the pixels those
 * of the file without them. A PNG whose only IDAT is empty is refused. */
static void test_png_empty_idat(void **state)
{
    (void)state;
    const uint8_t grey[2][4] = {{0, 60, 120, 255}, {9, 8, 7, 6}};
    const uint8_t wide[2][8] = {{0, 0, 1, 2, 128, 0, 255, 255}, {3, 4, 5, 6, 7, 8, 9, 10}};
    const uint8_t idx[2][4] = {{0, 1, 1, 0}, {1, 0, 0, 1}};
    const uint8_t plte[] = {10, 20, 30, 200, 100, 0};
    buf plain[3] = {
        png_by_hand(4, 2, 8, 0, &grey[0][0], 4, NULL, 0),
        png_by_hand(4, 2, 16, 0, &wide[0][0], 8, NULL, 0),
        png_by_hand(4, 2, 8, 3, &idx[0][0], 4, plte, 2),
    };
    for (int k = 0; k < 3; k++) {
        size_t head = 8 + (12 + 13) + (k == 2 ? 12 + 6 : 0), tail = 12; /* signature, IHDR, PLTE | IEND */
        buf b = {0};
        buf_add(&b, plain[k].p, head);
        png_chunk(&b, "IDAT", NULL, 0);
        png_chunk(&b, "IDAT", NULL, 0);
        buf_add(&b, plain[k].p + head, plain[k].n - head - tail);
        png_chunk(&b, "IDAT", NULL, 0);
        buf_add(&b, plain[k].p + plain[k].n - tail, tail);
        unsigned char *copy = NULL, *ref = NULL; /* ref: the palette padded, as the file without them gets it */
        size_t copy_n = 0, ref_n = 0;
        assert_int_equal(aibox_stb_rewrite(b.p, b.n, &copy, &copy_n), 1);
        assert_int_equal(aibox_stb_rewrite(plain[k].p, plain[k].n, &ref, &ref_n), k == 2);
        if (!ref) ref = plain[k].p, ref_n = plain[k].n;
        assert_int_equal(copy_n, ref_n);
        assert_memory_equal(copy, ref, copy_n);
        free(copy);
        if (ref != plain[k].p) free(ref);
        aibox_image want = decode_ok(plain[k].p, plain[k].n), got = decode_ok(b.p, b.n);
        assert_int_equal(got.channels, want.channels);
        assert_memory_equal(got.data, want.data, (size_t)want.width * want.height * want.channels);
        aibox_image_free(&want);
        aibox_image_free(&got);
        /* only empty IDATs: no image data at all */
        buf none = {0};
        buf_add(&none, plain[k].p, head);
        png_chunk(&none, "IDAT", NULL, 0);
        buf_add(&none, plain[k].p + plain[k].n - tail, tail);
        aibox_image im;
        aibox_error err = {0};
        assert_int_not_equal(aibox_image_decode(&im, none.p, none.n, "none.png", 0, &err), AIBOX_OK);
        assert_non_null(strstr(err.msg, "none.png"));
        print_message("# only an empty IDAT: %s\n", err.msg);
        free(none.p);
        free(b.p);
        free(plain[k].p);
    }
}

/* Offset of the first header segment with this marker (before the first
 * scan), or 0. */
static size_t jpeg_segment(const buf *b, uint8_t marker)
{
    size_t i = 2;
    while (i + 4 <= b->n && b->p[i] == 0xFF) {
        if (b->p[i + 1] == marker) return i;
        if (b->p[i + 1] == 0xDA) return 0;
        i += 2 + ((size_t)b->p[i + 2] << 8 | b->p[i + 3]);
    }
    return 0;
}

/* The JPEG without its header segments of this marker. */
static buf jpeg_without(const buf *b, uint8_t marker)
{
    buf out = {0};
    buf_add(&out, b->p, b->n);
    size_t at;
    while ((at = jpeg_segment(&out, marker))) {
        size_t seg = 2 + ((size_t)out.p[at + 2] << 8 | out.p[at + 3]);
        memmove(out.p + at, out.p + at + seg, out.n - at - seg);
        out.n -= seg;
    }
    return out;
}

/* Tables a JPEG's scans use before it defines them. stb keeps its decoder
 * state in uninitialised heap, so it used to decode such files from garbage:
 * Huffman tables 0 and 1 now get the standard tables (a motion-JPEG frame
 * saved by a camera carries none; libjpeg supplies them the same way), and
 * the rest is refused. */
static void test_jpeg_tables_undefined(void **state)
{
    (void)state;
    aibox_image src = {24, 16, 3, malloc(24 * 16 * 3)};
    fill_smooth(src.data, 24, 16, 3);
    buf full = encode_jpeg(&src, 90); /* stb_image_write writes the standard tables */
    aibox_image_free(&src);
    assert_true(jpeg_segment(&full, 0xC4) && jpeg_segment(&full, 0xDB));

    /* no DHT: the same pixels as with the file's own (standard) tables */
    buf mjpeg = jpeg_without(&full, 0xC4);
    assert_int_equal(jpeg_segment(&mjpeg, 0xC4), 0);
    mallopt(M_PERTURB, 0x5A); /* fresh allocations hold junk, not the last decoder's tables */
    aibox_image got = decode_ok(mjpeg.p, mjpeg.n), want = decode_ok(full.p, full.n);
    mallopt(M_PERTURB, 0);
    assert_int_equal(got.width, 24);
    assert_memory_equal(got.data, want.data, (size_t)24 * 16 * 3);
    aibox_image_free(&got);
    aibox_image_free(&want);
    free(mjpeg.p);

    /* a scan naming Huffman tables 2 and 3, which nothing defines */
    buf b = {0};
    buf_add(&b, full.p, full.n);
    size_t sos = jpeg_segment(&b, 0xDA);
    assert_true(sos > 0);
    for (int k = 0; k < b.p[sos + 4]; k++) b.p[sos + 6 + 2 * k] = 0x23;
    expect_refusal(b.p, b.n, 0, AIBOX_E_FORMAT, "a scan uses a Huffman table that is never defined");
    free(b.p);

    /* no quantisation tables */
    b = jpeg_without(&full, 0xDB);
    expect_refusal(b.p, b.n, 0, AIBOX_E_FORMAT, "quantisation table is not defined before it");
    free(b.p);

    /* a scan of the first component only: the other two planes would be
     * whatever the heap held */
    b = (buf){0};
    sos = jpeg_segment(&full, 0xDA);
    buf_add(&b, full.p, sos);
    const uint8_t one[] = {0xFF, 0xDA, 0, 8, 1, full.p[sos + 5], full.p[sos + 6], 0, 63, 0};
    buf_add(&b, one, sizeof one);
    size_t data = sos + 2 + ((size_t)full.p[sos + 2] << 8 | full.p[sos + 3]);
    buf_add(&b, full.p + data, full.n - data);
    expect_refusal(b.p, b.n, 0, AIBOX_E_FORMAT, "a colour component that no scan codes");
    free(b.p);
    free(full.p);
}

/* The class behind the last two tests: a decode must not depend on what
 * memory held before. Every image of the fuzz corpus (valid files of each
 * format, the fuzzers' finds, the files above) is decoded twice, with the
 * heap (glibc's M_PERTURB fills each allocation) and the stack poisoned
 * with different bytes: the verdict and every pixel must agree. */
static void test_decode_independent_of_memory(void **state)
{
    (void)state;
    const char *dir = "tests/fuzz/corpus/image";
    DIR *d = opendir(dir);
    assert_non_null(d);
    int files = 0, decoded = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        buf b = read_whole(path);
        aibox_image im[2];
        aibox_status st[2];
        aibox_error err[2];
        for (int r = 0; r < 2; r++) {
            uint8_t fill = r ? 0x3C : 0xC3;
            mallopt(M_PERTURB, fill);
            poison_stack_with(fill);
            st[r] = aibox_image_decode(&im[r], b.p, b.n, path, 1 << 16, &err[r]);
        }
        mallopt(M_PERTURB, 0);
        if (st[0] != st[1] || (!st[0] && (im[0].width != im[1].width || im[0].height != im[1].height ||
                                          im[0].channels != im[1].channels ||
                                          memcmp(im[0].data, im[1].data,
                                                 (size_t)im[0].width * im[0].height * im[0].channels))))
            fail_msg("%s decodes differently with different memory contents (status %d, %d)", path, st[0], st[1]);
        decoded += !st[0];
        files++;
        for (int r = 0; r < 2; r++) aibox_image_free(&im[r]);
        free(b.p);
    }
    closedir(d);
    print_message("%d corpus images (%d decode), each the same twice\n", files, decoded);
    assert_true(files >= 40 && decoded >= 30); /* the corpus holds more; a lister that found none would pass vacuously */
}

static void test_pnm(void **state)
{
    (void)state;
    /* P5 grey and P6 RGB, 8-bit */
    buf b = {0};
    const char *h5 = "P5\n# grey\n3 2\n255\n";
    buf_add(&b, h5, strlen(h5));
    const uint8_t g[6] = {0, 1, 127, 128, 254, 255};
    buf_add(&b, g, 6);
    aibox_image got = decode_ok(b.p, b.n);
    assert_int_equal(got.channels, 1);
    assert_int_equal(got.width, 3);
    assert_memory_equal(got.data, g, 6);
    aibox_image_free(&got);
    free(b.p);

    b = (buf){0};
    const char *h6 = "P6 2 2 255\n";
    buf_add(&b, h6, strlen(h6));
    uint8_t rgb[12];
    fill_pattern(rgb, 2, 2, 3, 4);
    buf_add(&b, rgb, 12);
    got = decode_ok(b.p, b.n);
    assert_int_equal(got.channels, 3);
    assert_memory_equal(got.data, rgb, 12);
    aibox_image_free(&got);
    free(b.p);

    /* 16-bit PGM (maxval 65535) takes the 16-bit path with rounding */
    b = (buf){0};
    const char *h16 = "P5 2 1 65535\n";
    buf_add(&b, h16, strlen(h16));
    const uint8_t s16[4] = {0x00, 0xFF, 0x80, 0x80}; /* 255 -> 1, 32896 -> 128 */
    buf_add(&b, s16, 4);
    got = decode_ok(b.p, b.n);
    assert_int_equal(got.channels, 1);
    assert_int_equal(got.data[0], 1);
    assert_int_equal(got.data[1], 128);
    aibox_image_free(&got);
    free(b.p);

    /* maxval other than 255 / 65535 is scaled to 0..255 (stb alone ignores it) */
    const uint8_t m15[] = "P5 4 1 15\n\x00\x07\x08\x0f";
    got = decode_ok(m15, sizeof m15 - 1);
    assert_memory_equal(got.data, ((uint8_t[]){0, 119, 136, 255}), 4);
    aibox_image_free(&got);
    const uint8_t m1023[] = "P5 2 1 1023\n\x02\x00\x03\xff"; /* 512, 1023 */
    got = decode_ok(m1023, sizeof m1023 - 1);
    assert_memory_equal(got.data, ((uint8_t[]){128, 255}), 2);
    aibox_image_free(&got);

    /* pixel data cut short: refused (stb would return uninitialised memory) */
    const uint8_t shortp[] = "P6 4 4 255\n\x01\x02\x03";
    expect_refusal(shortp, sizeof shortp - 1, 0, AIBOX_E_CORRUPT, "truncated PGM/PPM (3 of 48 sample bytes)");
    const uint8_t short16[] = "P5 2 2 65535\n\x01\x02\x03\x04\x05\x06\x07";
    expect_refusal(short16, sizeof short16 - 1, 0, AIBOX_E_CORRUPT, "truncated PGM/PPM (7 of 8");
    const uint8_t nomax[] = "P5 1 1 0\n\x00";
    expect_refusal(nomax, sizeof nomax - 1, 0, AIBOX_E_FORMAT, "maximum value is 0");
    const uint8_t huge[] = "P5 99999999999 1 255\n\x00";
    aibox_image im;
    assert_int_not_equal(aibox_image_decode(&im, huge, sizeof huge - 1, "huge.pgm", 0, NULL), AIBOX_OK);
    assert_null(im.data);
}

static void test_bmp_tga(void **state)
{
    (void)state;
    uint8_t rgb[9 * 5 * 3], rgba[6 * 4 * 4], grey[7 * 3];
    fill_pattern(rgb, 9, 5, 3, 1);
    fill_pattern(rgba, 6, 4, 4, 2);
    fill_pattern(grey, 7, 3, 1, 3);
    buf b = {0};
    assert_true(stbi_write_bmp_to_func(buf_put, &b, 9, 5, 3, rgb)); /* 9 px: rows padded to 4 bytes */
    aibox_image got = decode_ok(b.p, b.n);
    assert_int_equal(got.channels, 3);
    assert_memory_equal(got.data, rgb, sizeof rgb);
    aibox_image_free(&got);
    free(b.p);

    b = (buf){0};
    assert_true(stbi_write_tga_to_func(buf_put, &b, 6, 4, 4, rgba));
    got = decode_ok(b.p, b.n);
    assert_int_equal(got.channels, 4);
    assert_memory_equal(got.data, rgba, sizeof rgba);
    aibox_image_free(&got);
    free(b.p);

    b = (buf){0};
    assert_true(stbi_write_tga_to_func(buf_put, &b, 7, 3, 1, grey));
    got = decode_ok(b.p, b.n);
    assert_int_equal(got.channels, 1);
    assert_memory_equal(got.data, grey, sizeof grey);
    aibox_image_free(&got);
    free(b.p);

    /* an uncompressed TGA by hand (18-byte header, 3-byte id, BGR rows bottom
     * up), then cut short: refused (stb would return uninitialised memory) */
    buf t = {0};
    uint8_t hdr[18] = {3, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 2, 0, 24, 0};
    buf_add(&t, hdr, 18);
    buf_add(&t, "abc", 3);
    const uint8_t bgr[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    buf_add(&t, bgr, 12);
    got = decode_ok(t.p, t.n);
    assert_int_equal(got.channels, 3);
    assert_memory_equal(got.data, ((uint8_t[]){9, 8, 7, 12, 11, 10, 3, 2, 1, 6, 5, 4}), 12);
    aibox_image_free(&got);
    expect_refusal(t.p, t.n - 5, 0, AIBOX_E_CORRUPT, "truncated TGA");
    free(t.p);
    /* an 8-bit BMP with a 2-entry palette: indices 0 and 1 decode; index 2
     * is refused (stb would look it up in uninitialised memory) */
    uint8_t pal8[14 + 40 + 8 + 4] = {'B', 'M', sizeof pal8, 0, 0, 0, 0, 0, 0, 0, 62, 0, 0, 0, 40, 0, 0, 0,
                                      3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 8, 0};
    memcpy(pal8 + 54, (uint8_t[]){30, 20, 10, 0, 60, 50, 40, 0}, 8); /* BGR0 entries */
    memcpy(pal8 + 62, (uint8_t[]){1, 0, 1, 0}, 4);                  /* one row of 3 indices and its pad */
    got = decode_ok(pal8, sizeof pal8);
    assert_int_equal(got.channels, 3);
    assert_memory_equal(got.data, ((uint8_t[]){40, 50, 60, 10, 20, 30, 40, 50, 60}), 9);
    aibox_image_free(&got);
    pal8[63] = 2;
    expect_refusal(pal8, sizeof pal8, 0, AIBOX_E_FORMAT, "malformed BMP (pixel index 2 beyond its 2-entry palette)");
    /* a BMP cut short: stb would read zeros past the end, so it is refused */
    b = (buf){0};
    assert_true(stbi_write_bmp_to_func(buf_put, &b, 9, 5, 3, rgb));
    expect_refusal(b.p, 33, 0, AIBOX_E_CORRUPT, "truncated BMP (header: 33 of 54 bytes)");
    expect_refusal(b.p, b.n - 30, 0, AIBOX_E_CORRUPT, "truncated BMP (pixel data: ");
    free(b.p);
}

static void test_gif_first_frame(void **state)
{
    (void)state;
    buf b = from_hex(GIF_HEX);
    aibox_image got = decode_ok(b.p, b.n);
    assert_int_equal(got.width, 4);
    assert_int_equal(got.height, 2);
    assert_int_equal(got.channels, 4);
    const uint8_t pal[4][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 255}};
    const int idx[8] = {0, 1, 2, 3, 3, 2, 1, 0};
    for (int i = 0; i < 8; i++) {
        assert_memory_equal(got.data + 4 * i, pal[idx[i]], 3);
        assert_int_equal(got.data[4 * i + 3], 255);
    }
    aibox_image_free(&got);
    /* cut short (stb would return the frame with the missing pixels transparent): refused */
    expect_refusal(b.p, 40, 0, AIBOX_E_CORRUPT, "truncated GIF");
    expect_refusal(b.p, b.n - 1, 0, AIBOX_E_CORRUPT, "truncated GIF (no trailer)");
    free(b.p);
}

static void test_jpeg(void **state)
{
    (void)state;
    /* baseline, RGB, full-resolution chroma at quality 95 */
    aibox_image src = {32, 24, 3, malloc(32 * 24 * 3)};
    fill_smooth(src.data, 32, 24, 3);
    buf b = encode_jpeg(&src, 95);
    assert_memory_equal(b.p, "\xff\xd8", 2);
    aibox_image got = decode_ok(b.p, b.n);
    assert_int_equal(got.width, 32);
    assert_int_equal(got.height, 24);
    assert_int_equal(got.channels, 3);
    int d = max_abs_diff(got.data, src.data, (size_t)32 * 24 * 3);
    assert_true(d <= 12);
    aibox_image_free(&got);
    free(b.p);
    aibox_image_free(&src);

    /* grey: stb_image_write stores it as YCbCr, so it decodes as 3 equal channels */
    aibox_image grey = {16, 16, 1, malloc(256)};
    fill_smooth(grey.data, 16, 16, 1);
    b = encode_jpeg(&grey, 90);
    got = decode_ok(b.p, b.n);
    assert_int_equal(got.channels, 3);
    for (int i = 0; i < 256; i++) {
        assert_true(abs(got.data[3 * i] - grey.data[i]) <= 8);
        assert_true(abs(got.data[3 * i] - got.data[3 * i + 1]) <= 2);
    }
    aibox_image_free(&got);
    free(b.p);
    aibox_image_free(&grey);

    /* progressive */
    b = from_hex(PROGRESSIVE_JPEG_HEX);
    int sof2 = 0;
    for (size_t i = 0; i + 1 < b.n; i++) sof2 |= b.p[i] == 0xFF && b.p[i + 1] == 0xC2;
    assert_true(sof2);
    got = decode_ok(b.p, b.n);
    assert_int_equal(got.width, 16);
    assert_int_equal(got.height, 8);
    assert_int_equal(got.channels, 3);
    int worst = 0;
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 16; x++) {
            const int want[3] = {16 * x, 32 * y, 255 - 16 * x};
            for (int k = 0; k < 3; k++) {
                int e = abs(got.data[(y * 16 + x) * 3 + k] - want[k]);
                worst = e > worst ? e : worst;
            }
        }
    assert_true(worst <= 12);
    aibox_image_free(&got);
    free(b.p);
}

static void test_one_pixel(void **state)
{
    (void)state;
    aibox_image px = {1, 1, 3, (uint8_t[]){200, 100, 50}};
    buf b = {0};
    assert_int_equal(aibox_image_encode_png(&px, &b.p, &b.n, NULL), AIBOX_OK);
    aibox_image got = decode_ok(b.p, b.n);
    assert_int_equal(got.width, 1);
    assert_int_equal(got.height, 1);
    assert_memory_equal(got.data, px.data, 3);
    aibox_image_free(&got);
    free(b.p);
    b = encode_jpeg(&px, 100);
    got = decode_ok(b.p, b.n);
    assert_int_equal(got.width, 1);
    assert_true(max_abs_diff(got.data, px.data, 3) <= 6);
    aibox_image_free(&got);
    free(b.p);
    const uint8_t pgm[] = "P5 1 1 255\n\x2a";
    got = decode_ok(pgm, sizeof pgm - 1);
    assert_int_equal(got.data[0], 42);
    aibox_image_free(&got);
}

static void test_corrupt_inputs(void **state)
{
    (void)state;
    expect_refusal("", 0, 0, AIBOX_E_FORMAT, "empty file");
    const char *text = "just some notes, not an image\n";
    expect_refusal(text, strlen(text), 0, AIBOX_E_FORMAT, "cannot decode");
    uint8_t noise[300];
    fill_pattern(noise, 300, 1, 1, 5);
    expect_refusal(noise, sizeof noise, 0, AIBOX_E_FORMAT, "cannot decode");

    /* truncated JPEGs: in half, and only the end-of-image marker missing */
    aibox_image src = {40, 30, 3, malloc(40 * 30 * 3)};
    fill_smooth(src.data, 40, 30, 3);
    buf j = encode_jpeg(&src, 90);
    expect_refusal(j.p, j.n / 2, 0, AIBOX_E_CORRUPT, "truncated JPEG"); /* inside a Huffman table segment */
    expect_refusal(j.p, j.n - 10, 0, AIBOX_E_CORRUPT, "truncated JPEG (no end-of-image marker)");
    expect_refusal(j.p, j.n - 2, 0, AIBOX_E_CORRUPT, "truncated JPEG");
    expect_refusal(j.p, 40, 0, AIBOX_E_CORRUPT, "truncated JPEG"); /* cut inside the headers */
    /* zero padding after EOI, and bytes appended after it (motion photos), are fine as stb reads them */
    buf padded = {0};
    buf_add(&padded, j.p, j.n);
    buf_add(&padded, "\0\0\0\0", 4);
    aibox_image got = decode_ok(padded.p, padded.n);
    aibox_image_free(&got);
    buf_add(&padded, "trailing data", 13);
    got = decode_ok(padded.p, padded.n);
    aibox_image_free(&got);
    free(padded.p);
    /* a progressive one cut short */
    buf pj = from_hex(PROGRESSIVE_JPEG_HEX);
    expect_refusal(pj.p, pj.n * 3 / 4, 0, AIBOX_E_CORRUPT, "truncated JPEG");
    free(pj.p);

    /* truncated PNG: half the data, and IEND missing in a file cut inside IDAT */
    buf p = {0};
    assert_int_equal(aibox_image_encode_png(&src, &p.p, &p.n, NULL), AIBOX_OK);
    expect_refusal(p.p, p.n / 2, 0, AIBOX_E_CORRUPT, "truncated PNG");
    expect_refusal(p.p, 40, 0, AIBOX_E_CORRUPT, "truncated PNG");
    /* damaged data with the ends intact is a format error */
    buf bad = {0};
    buf_add(&bad, p.p, p.n);
    memset(bad.p + 60, 0xA5, 40);
    aibox_image im;
    aibox_error err = {0};
    aibox_status st = aibox_image_decode(&im, bad.p, bad.n, "bad.png", 0, &err);
    assert_true(st == AIBOX_E_FORMAT || st == AIBOX_E_CORRUPT);
    assert_non_null(strstr(err.msg, "bad.png"));
    assert_null(im.data);
    free(bad.p);
    free(p.p);
    free(j.p);
    aibox_image_free(&src);

    /* formats stb reads but libaibox does not offer */
    const char *hdr = "#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 1 +X 1\n\x80\x80\x80\x81";
    expect_refusal(hdr, strlen(hdr), 0, AIBOX_E_UNSUPPORTED, "Radiance HDR images are not supported");
    const uint8_t psd[26] = {'8', 'B', 'P', 'S', 0, 1};
    expect_refusal(psd, sizeof psd, 0, AIBOX_E_UNSUPPORTED, "Photoshop images are not supported");

    /* arguments */
    assert_int_equal(aibox_image_decode(NULL, text, 5, "x", 0, NULL), AIBOX_E_INVALID);
    assert_int_equal(aibox_image_decode(&im, NULL, 5, "x", 0, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_image_decode(&im, NULL, 0, NULL, 0, &err), AIBOX_E_FORMAT); /* NULL name is allowed */
    assert_non_null(strstr(err.msg, "empty file"));
}

static void test_oversized_headers(void **state)
{
    (void)state;
    /* a PNG header claiming 100000 x 100000 RGB, nothing else: refused from
     * the header (stb itself calls it "too large"; the message names our limit) */
    buf b = png_by_hand(100000, 100000, 8, 2, NULL, 0, NULL, 0);
    double t0 = now_s();
    expect_refusal(b.p, b.n, 0, AIBOX_E_UNSUPPORTED, "100000x100000 pixels exceeds the 100000000-pixel limit");
    assert_true(now_s() - t0 < 0.5);
    free(b.p);
    /* the same with pixel data that would decode: refused before decoding */
    uint8_t rows[64 * 64 * 3];
    fill_pattern(rows, 64, 64, 3, 1);
    b = png_by_hand(64, 64, 8, 2, rows, 64 * 3, NULL, 0);
    expect_refusal(b.p, b.n, 4095, AIBOX_E_UNSUPPORTED, "64x64 pixels exceeds the 4095-pixel limit");
    aibox_image got;
    assert_int_equal(aibox_image_decode(&got, b.p, b.n, "ok", 4096, NULL), AIBOX_OK); /* exactly at the cap */
    aibox_image_free(&got);
    free(b.p);
    /* 0 pixels wide */
    b = png_by_hand(0, 5, 8, 0, NULL, 0, NULL, 0);
    expect_refusal(b.p, b.n, 0, AIBOX_E_FORMAT, "cannot decode");
    free(b.p);
    /* GIF screen 65535 x 65535: stb reads the header, we refuse */
    b = from_hex(GIF_HEX);
    b.p[6] = b.p[7] = b.p[8] = b.p[9] = 0xFF;
    t0 = now_s();
    expect_refusal(b.p, b.n, 0, AIBOX_E_UNSUPPORTED, "65535x65535 pixels exceeds the 100000000-pixel limit");
    assert_true(now_s() - t0 < 0.5);
    free(b.p);
    /* JPEG frame header claiming 60000 x 60000 (SOF0 patched) */
    aibox_image src = make_image(8, 8, 3, 0);
    b = encode_jpeg(&src, 90);
    size_t sof = 0;
    for (size_t i = 2; i + 9 < b.n; i++)
        if (b.p[i] == 0xFF && b.p[i + 1] == 0xC0) {
            sof = i;
            break;
        }
    assert_true(sof > 0);
    b.p[sof + 5] = 0xEA, b.p[sof + 6] = 0x60; /* height 60000 */
    b.p[sof + 7] = 0xEA, b.p[sof + 8] = 0x60; /* width 60000 */
    t0 = now_s();
    aibox_error err = {0};
    aibox_status st = aibox_image_decode(&got, b.p, b.n, "big.jpg", 0, &err);
    assert_int_equal(st, AIBOX_E_UNSUPPORTED);
    assert_true(strstr(err.msg, "limit") || strstr(err.msg, "too large"));
    assert_true(now_s() - t0 < 0.5);
    free(b.p);
    aibox_image_free(&src);
}

/* stb keeps its failure reason per thread: threads failing for different
 * reasons, and one succeeding, each see exactly their own outcome. */
typedef struct {
    const uint8_t *p;
    size_t n;
    aibox_status want;
    char msg[AIBOX_ERROR_MSG_LEN];
    int bad;
} decode_job;

static void *decode_loop(void *arg)
{
    decode_job *j = arg;
    for (int i = 0; i < 200; i++) {
        aibox_image im;
        aibox_error e = {0};
        aibox_status st = aibox_image_decode(&im, j->p, j->n, "job", 0, &e);
        if (st != j->want || (st && strcmp(e.msg, j->msg) != 0)) j->bad++;
        aibox_image_free(&im);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    aibox_image src = make_image(40, 30, 3, 1);
    buf png = {0}, bad_png = {0}, bad_jpg;
    assert_int_equal(aibox_image_encode_png(&src, &png.p, &png.n, NULL), AIBOX_OK);
    buf_add(&bad_png, png.p, png.n);
    memset(bad_png.p + 60, 0xA5, 40);
    bad_jpg = encode_jpeg(&src, 90);
    memset(bad_jpg.p + bad_jpg.n / 2, 0, 20);
    const char *text = "just some notes, not an image\n";
    decode_job jobs[4] = {{.p = (const uint8_t *)text, .n = strlen(text)}, {.p = bad_png.p, .n = bad_png.n},
                          {.p = bad_jpg.p, .n = bad_jpg.n}, {.p = png.p, .n = png.n}};
    for (int i = 0; i < 4; i++) { /* each outcome alone first */
        aibox_image im;
        aibox_error e = {0};
        jobs[i].want = aibox_image_decode(&im, jobs[i].p, jobs[i].n, "job", 0, &e);
        memcpy(jobs[i].msg, e.msg, sizeof e.msg);
        aibox_image_free(&im);
    }
    assert_int_equal(jobs[3].want, AIBOX_OK);
    for (int i = 0; i < 3; i++) assert_int_not_equal(jobs[i].want, AIBOX_OK);
    assert_string_not_equal(jobs[0].msg, jobs[1].msg);
    assert_string_not_equal(jobs[1].msg, jobs[2].msg);
    pthread_t th[4];
    for (int i = 0; i < 4; i++) assert_int_equal(pthread_create(&th[i], NULL, decode_loop, &jobs[i]), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(jobs[i].bad, 0);
    }
    free(png.p);
    free(bad_png.p);
    free(bad_jpg.p);
    aibox_image_free(&src);
}

/* ------------------------------------------------------------------ files */

static void test_load(void **state)
{
    (void)state;
    char path[256];
    aibox_image src = make_image(11, 6, 3, 3), got;
    aibox_error err = {0};
    buf b = {0};
    assert_int_equal(aibox_image_encode_png(&src, &b.p, &b.n, NULL), AIBOX_OK);
    path_in(path, sizeof path, "load.png");
    write_file(path, b.p, b.n);
    assert_int_equal(aibox_image_load(&got, path, 0, &err), AIBOX_OK);
    assert_int_equal(got.channels, 3);
    assert_memory_equal(got.data, src.data, 11 * 6 * 3);
    aibox_image_free(&got);
    /* the pixel cap reaches decode, and the message names the path */
    assert_int_equal(aibox_image_load(&got, path, 10, &err), AIBOX_E_UNSUPPORTED);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "10-pixel limit"));
    free(b.p);

    path_in(path, sizeof path, "missing.png");
    assert_int_equal(aibox_image_load(&got, path, 0, &err), AIBOX_E_NOTFOUND);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, strerror(ENOENT)));

    assert_int_equal(aibox_image_load(&got, g_dir, 0, &err), AIBOX_E_IO);
    assert_non_null(strstr(err.msg, "not a regular file"));

    path_in(path, sizeof path, "fifo");
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(aibox_image_load(&got, path, 0, &err), AIBOX_E_IO); /* must not block */
    assert_non_null(strstr(err.msg, "not a regular file"));
    unlink(path);

    path_in(path, sizeof path, "empty.png");
    write_file(path, "", 0);
    assert_int_equal(aibox_image_load(&got, path, 0, &err), AIBOX_E_FORMAT);
    assert_non_null(strstr(err.msg, "empty file"));
    assert_non_null(strstr(err.msg, path));
    unlink(path);

    path_in(path, sizeof path, "notes.txt");
    write_file(path, "hello\n", 6);
    assert_int_equal(aibox_image_load(&got, path, 0, &err), AIBOX_E_FORMAT);
    assert_non_null(strstr(err.msg, path));
    unlink(path);

    assert_int_equal(aibox_image_load(&got, "", 0, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_image_load(&got, NULL, 0, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_image_load(NULL, path, 0, &err), AIBOX_E_INVALID);
    path_in(path, sizeof path, "load.png");
    unlink(path);
    aibox_image_free(&src);
}

/* ------------------------------------------------------------------ copy, convert */

static void test_copy_free(void **state)
{
    (void)state;
    aibox_image src = make_image(5, 4, 4, 1), dst;
    assert_int_equal(aibox_image_copy(&dst, &src, NULL), AIBOX_OK);
    assert_int_equal(dst.width, 5);
    assert_int_equal(dst.channels, 4);
    assert_ptr_not_equal(dst.data, src.data);
    assert_memory_equal(dst.data, src.data, 80);
    aibox_image_free(&dst);
    assert_null(dst.data);
    assert_int_equal(dst.width, 0);
    aibox_image_free(&dst); /* twice is harmless */
    aibox_image_free(NULL);
    aibox_error err = {0};
    assert_int_equal(aibox_image_copy(&src, &src, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_image_copy(NULL, &src, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_image_copy(&dst, NULL, &err), AIBOX_E_INVALID);
    const aibox_image bad[] = {{5, 4, 2, src.data}, {0, 4, 3, src.data}, {5, -1, 3, src.data},
                               {5, 4, 3, NULL},     {1 << 25, 1, 1, src.data}, {40000, 40000, 4, src.data}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(aibox_image_copy(&dst, &bad[i], &err), AIBOX_E_INVALID);
        assert_null(dst.data);
    }
    aibox_image_free(&src);
}

static void test_convert(void **state)
{
    (void)state;
    aibox_image grey = make_image(17, 9, 1, 2), rgb, back, rgba, g2;
    aibox_error err = {0};
    /* grey -> RGB -> grey is exact: equal channels have luma equal to them */
    assert_int_equal(aibox_image_convert(&rgb, &grey, 3, &err), AIBOX_OK);
    for (int i = 0; i < 17 * 9; i++)
        for (int k = 0; k < 3; k++) assert_int_equal(rgb.data[3 * i + k], grey.data[i]);
    assert_int_equal(aibox_image_convert(&back, &rgb, 1, &err), AIBOX_OK);
    assert_memory_equal(back.data, grey.data, 17 * 9);
    aibox_image_free(&back);
    /* grey -> RGBA, opaque */
    assert_int_equal(aibox_image_convert(&rgba, &grey, 4, &err), AIBOX_OK);
    for (int i = 0; i < 17 * 9; i++) {
        for (int k = 0; k < 3; k++) assert_int_equal(rgba.data[4 * i + k], grey.data[i]);
        assert_int_equal(rgba.data[4 * i + 3], 255);
    }
    assert_int_equal(aibox_image_convert(&g2, &rgba, 1, &err), AIBOX_OK);
    assert_memory_equal(g2.data, grey.data, 17 * 9);
    aibox_image_free(&g2);
    aibox_image_free(&rgba);
    aibox_image_free(&rgb);

    /* RGB -> grey against BT.601 in double; known values first */
    uint8_t known[] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 10, 20, 30};
    aibox_image k = {6, 1, 3, known};
    assert_int_equal(aibox_image_convert(&g2, &k, 1, &err), AIBOX_OK);
    const uint8_t want_k[] = {76, 150, 29, 255, 0, 18};
    assert_memory_equal(g2.data, want_k, 6);
    aibox_image_free(&g2);
    aibox_image many = make_image(64, 64, 3, 11);
    assert_int_equal(aibox_image_convert(&g2, &many, 1, &err), AIBOX_OK);
    for (int i = 0; i < 64 * 64; i++) {
        const uint8_t *p = many.data + 3 * i;
        double y = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
        if (fabs(y - floor(y) - 0.5) < 1e-9) continue; /* exact halves: rounded up, double may say either */
        assert_int_equal(g2.data[i], (int)floor(y + 0.5));
    }
    aibox_image_free(&g2);

    /* RGB -> RGBA opaque; RGBA -> RGB drops alpha without compositing */
    assert_int_equal(aibox_image_convert(&rgba, &many, 4, &err), AIBOX_OK);
    for (int i = 0; i < 64 * 64; i++) {
        assert_memory_equal(rgba.data + 4 * i, many.data + 3 * i, 3);
        assert_int_equal(rgba.data[4 * i + 3], 255);
    }
    for (int i = 0; i < 64 * 64; i++) rgba.data[4 * i + 3] = (uint8_t)i; /* transparency changes nothing */
    assert_int_equal(aibox_image_convert(&rgb, &rgba, 3, &err), AIBOX_OK);
    assert_memory_equal(rgb.data, many.data, 64 * 64 * 3);
    assert_int_equal(aibox_image_convert(&g2, &rgba, 1, &err), AIBOX_OK); /* RGBA -> grey: luma of RGB */
    assert_int_equal(aibox_image_convert(&back, &many, 1, &err), AIBOX_OK);
    assert_memory_equal(g2.data, back.data, 64 * 64);
    aibox_image_free(&g2);
    aibox_image_free(&back);
    /* same channel count: a copy */
    assert_int_equal(aibox_image_convert(&back, &rgba, 4, &err), AIBOX_OK);
    assert_memory_equal(back.data, rgba.data, 64 * 64 * 4);
    aibox_image_free(&back);

    /* refusals */
    assert_int_equal(aibox_image_convert(&back, &many, 2, &err), AIBOX_E_INVALID);
    assert_non_null(strstr(err.msg, "2 channels"));
    assert_null(back.data);
    assert_int_equal(aibox_image_convert(&back, &many, 0, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_image_convert(&many, &many, 1, &err), AIBOX_E_INVALID);
    assert_non_null(many.data); /* untouched */
    assert_int_equal(aibox_image_convert(NULL, &many, 1, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_image_convert(&back, NULL, 1, &err), AIBOX_E_INVALID);
    aibox_image two = {4, 4, 2, many.data};
    assert_int_equal(aibox_image_convert(&back, &two, 1, &err), AIBOX_E_INVALID);
    aibox_image_free(&rgb);
    aibox_image_free(&rgba);
    aibox_image_free(&many);
    aibox_image_free(&grey);
}

/* ------------------------------------------------------------------ resize */

static void test_resize_mode_names(void **state)
{
    (void)state;
    const aibox_resize_mode all[] = {AIBOX_RESIZE_AREA, AIBOX_RESIZE_BILINEAR, AIBOX_RESIZE_NEAREST,
                                     AIBOX_RESIZE_BILINEAR_CENTER};
    const char *names[] = {"area", "bilinear", "nearest", "bilinear_center"};
    for (int i = 0; i < 4; i++) {
        assert_string_equal(aibox_resize_mode_name(all[i]), names[i]);
        aibox_resize_mode m = (aibox_resize_mode)99;
        assert_int_equal(aibox_resize_mode_parse(names[i], &m), AIBOX_OK);
        assert_int_equal(m, all[i]);
    }
    aibox_resize_mode m = AIBOX_RESIZE_NEAREST;
    assert_int_equal(aibox_resize_mode_parse("Bilinear", &m), AIBOX_OK); /* case is not significant */
    assert_int_equal(m, AIBOX_RESIZE_BILINEAR);
    assert_int_equal(aibox_resize_mode_parse("bicubic", &m), AIBOX_E_INVALID);
    assert_int_equal(aibox_resize_mode_parse("", &m), AIBOX_E_INVALID);
    assert_int_equal(aibox_resize_mode_parse(NULL, &m), AIBOX_E_INVALID);
    assert_int_equal(aibox_resize_mode_parse("area", NULL), AIBOX_E_INVALID);
    assert_int_equal(m, AIBOX_RESIZE_BILINEAR);
    assert_null(aibox_resize_mode_name((aibox_resize_mode)7));
}

static void test_resize_args(void **state)
{
    (void)state;
    aibox_image src = make_image(8, 6, 3, 0), dst;
    aibox_error err = {0};
    assert_int_equal(aibox_image_resize(&dst, &src, 0, 4, AIBOX_RESIZE_AREA, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_image_resize(&dst, &src, 4, -3, AIBOX_RESIZE_BILINEAR, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_image_resize(&dst, &src, 1 << 25, 1, AIBOX_RESIZE_NEAREST, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_image_resize(&dst, &src, 50000, 50000, AIBOX_RESIZE_NEAREST, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_image_resize(&dst, &src, 4, 4, (aibox_resize_mode)5, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_image_resize(&src, &src, 4, 4, AIBOX_RESIZE_AREA, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_image_resize(NULL, &src, 4, 4, AIBOX_RESIZE_AREA, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_image_resize(&dst, NULL, 4, 4, AIBOX_RESIZE_AREA, &err), AIBOX_E_INVALID);
    assert_null(dst.data);
    /* same size: every mode returns the pixels unchanged (for "area" by choice: stb would blur) */
    for (int m = 0; m < 3; m++) {
        assert_int_equal(aibox_image_resize(&dst, &src, 8, 6, (aibox_resize_mode)m, &err), AIBOX_OK);
        assert_memory_equal(dst.data, src.data, 8 * 6 * 3);
        aibox_image_free(&dst);
    }
    aibox_image_free(&src);
}

static void test_resize_area(void **state)
{
    (void)state;
    const int chans[] = {1, 3, 4};
    const int sizes[][2] = {{10, 7}, {80, 50}, {1, 1}, {37, 1}, {5, 60}};
    for (int ci = 0; ci < 3; ci++) {
        int c = chans[ci];
        aibox_image src = {37, 23, c, malloc((size_t)37 * 23 * c)};
        const uint8_t colour[4] = {200, 17, 99, 255};
        for (int i = 0; i < 37 * 23; i++) memcpy(src.data + (size_t)i * c, colour, (size_t)c);
        for (int s = 0; s < 5; s++) {
            aibox_image dst;
            assert_int_equal(aibox_image_resize(&dst, &src, sizes[s][0], sizes[s][1], AIBOX_RESIZE_AREA, NULL),
                             AIBOX_OK);
            assert_int_equal(dst.width, sizes[s][0]);
            assert_int_equal(dst.height, sizes[s][1]);
            assert_int_equal(dst.channels, c);
            for (int i = 0; i < sizes[s][0] * sizes[s][1]; i++) assert_memory_equal(dst.data + (size_t)i * c, colour, c);
            aibox_image_free(&dst);
        }
        aibox_image_free(&src);
    }
    /* a linear ramp: symmetric filters with pixel centres at (i + 0.5) * scale
     * keep it linear (64 -> 16: the mean of each 4, 16 i + 6), and an
     * upscale stays non-decreasing and within range */
    aibox_image ramp = {64, 4, 1, malloc(256)};
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 64; x++) ramp.data[y * 64 + x] = (uint8_t)(x * 4);
    aibox_image dst;
    assert_int_equal(aibox_image_resize(&dst, &ramp, 16, 3, AIBOX_RESIZE_AREA, NULL), AIBOX_OK);
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 16; x++) assert_true(abs(dst.data[y * 16 + x] - (16 * x + 6)) <= 1);
    aibox_image_free(&dst);
    assert_int_equal(aibox_image_resize(&dst, &ramp, 150, 9, AIBOX_RESIZE_AREA, NULL), AIBOX_OK);
    for (int y = 0; y < 9; y++)
        for (int x = 1; x < 150; x++) assert_true(dst.data[y * 150 + x] >= dst.data[y * 150 + x - 1]);
    assert_true(dst.data[0] <= 2 && dst.data[149] >= 248);
    aibox_image_free(&dst);
    aibox_image_free(&ramp);
}

/* TensorFlow's ResizeBilinear (align_corners = false, half_pixel_centers =
 * false, or true with half) written from its formula in double. */
static double tf_bilinear_ex(const aibox_image *src, int ow, int oh, int x, int y, int k, int half)
{
    double sy = y * ((double)src->height / oh), sx = x * ((double)src->width / ow);
    if (half) { /* half_pixel_centers = true: centres align, negative positions use the first pixel */
        sy = (y + 0.5) * ((double)src->height / oh) - 0.5, sx = (x + 0.5) * ((double)src->width / ow) - 0.5;
        sy = sy < 0 ? 0 : sy, sx = sx < 0 ? 0 : sx;
    }
    int y0 = (int)floor(sy), x0 = (int)floor(sx);
    int y1 = y0 + 1 < src->height ? y0 + 1 : src->height - 1, x1 = x0 + 1 < src->width ? x0 + 1 : src->width - 1;
    double dy = sy - y0, dx = sx - x0;
#define PX(yy, xx) ((double)src->data[((size_t)(yy)*src->width + (xx)) * src->channels + k])
    double top = PX(y0, x0) + (PX(y0, x1) - PX(y0, x0)) * dx;
    double bot = PX(y1, x0) + (PX(y1, x1) - PX(y1, x0)) * dx;
#undef PX
    return top + (bot - top) * dy;
}

static void test_resize_bilinear(void **state)
{
    (void)state;
    aibox_image dst;
    /* by hand: [0 100] to 4 wide samples at 0, .5, 1, 1.5 and clamps at the right edge */
    aibox_image two = {2, 1, 1, (uint8_t[]){0, 100}};
    assert_int_equal(aibox_image_resize(&dst, &two, 4, 1, AIBOX_RESIZE_BILINEAR, NULL), AIBOX_OK);
    assert_memory_equal(dst.data, ((uint8_t[]){0, 50, 100, 100}), 4);
    aibox_image_free(&dst);
    /* [0 10 20 30] to 2 wide: samples at 0 and 2, no averaging */
    aibox_image four = {4, 1, 1, (uint8_t[]){0, 10, 20, 30}};
    assert_int_equal(aibox_image_resize(&dst, &four, 2, 1, AIBOX_RESIZE_BILINEAR, NULL), AIBOX_OK);
    assert_memory_equal(dst.data, ((uint8_t[]){0, 20}), 2);
    aibox_image_free(&dst);
    /* [0 3] to 3 wide: samples at 0, 2/3 (0 + 3 * 2/3 = 2) and 4/3 (clamped to the last pixel) */
    aibox_image odd = {2, 1, 1, (uint8_t[]){0, 3}};
    assert_int_equal(aibox_image_resize(&dst, &odd, 3, 1, AIBOX_RESIZE_BILINEAR, NULL), AIBOX_OK);
    assert_memory_equal(dst.data, ((uint8_t[]){0, 2, 3}), 3);
    aibox_image_free(&dst);

    /* half-pixel centres by hand: [0 100] to 4 wide samples at -.25 (clamped), .25, .75, 1.25 */
    assert_int_equal(aibox_image_resize(&dst, &two, 4, 1, AIBOX_RESIZE_BILINEAR_CENTER, NULL), AIBOX_OK);
    assert_memory_equal(dst.data, ((uint8_t[]){0, 25, 75, 100}), 4);
    aibox_image_free(&dst);
    /* [0 10 20 30] to 2 wide: samples at 0.5 and 2.5, the averages of pairs */
    assert_int_equal(aibox_image_resize(&dst, &four, 2, 1, AIBOX_RESIZE_BILINEAR_CENTER, NULL), AIBOX_OK);
    assert_memory_equal(dst.data, ((uint8_t[]){5, 25}), 2);
    aibox_image_free(&dst);

    /* larger cases against the double formula, truncated to 8 bits as TFLite's
     * pipelines cast: equal, except within a hair of an integer */
    const int cases[][5] = {{5, 3, 3, 12, 7}, {5, 3, 3, 2, 2}, {7, 9, 1, 3, 4}, {6, 4, 4, 9, 9}, {16, 10, 3, 5, 3}};
    for (size_t ci = 0; ci < 2 * sizeof cases / sizeof cases[0]; ci++) {
        size_t cj = ci % (sizeof cases / sizeof cases[0]);
        int half = ci >= sizeof cases / sizeof cases[0];
        aibox_image src = make_image(cases[cj][0], cases[cj][1], cases[cj][2], (unsigned)cj);
        int ow = cases[cj][3], oh = cases[cj][4], c = cases[cj][2];
        assert_int_equal(aibox_image_resize(&dst, &src, ow, oh, half ? AIBOX_RESIZE_BILINEAR_CENTER : AIBOX_RESIZE_BILINEAR,
                                            NULL),
                         AIBOX_OK);
        assert_int_equal(dst.channels, c);
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++)
                for (int k = 0; k < c; k++) {
                    double v = tf_bilinear_ex(&src, ow, oh, x, y, k, half);
                    int got = dst.data[((size_t)y * ow + x) * c + k], want = (int)floor(v);
                    if (fabs(v - floor(v + 0.5)) < 1e-3) assert_true(abs(got - (int)floor(v + 0.5)) <= 1);
                    else assert_int_equal(got, want);
                }
        aibox_image_free(&dst);
        aibox_image_free(&src);
    }
}

static void test_resize_nearest(void **state)
{
    (void)state;
    /* pixel value = 10 y + x identifies the source */
    aibox_image src = {5, 3, 1, malloc(15)};
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 5; x++) src.data[y * 5 + x] = (uint8_t)(10 * y + x);
    aibox_image dst;
    /* down 5 -> 3 (scale 5/3): x 0, 1, 3; up 3 -> 7 (scale 3/7): y 0 0 0 1 1 2 2 */
    assert_int_equal(aibox_image_resize(&dst, &src, 3, 7, AIBOX_RESIZE_NEAREST, NULL), AIBOX_OK);
    const int xs[3] = {0, 1, 3}, ys[7] = {0, 0, 0, 1, 1, 2, 2};
    for (int y = 0; y < 7; y++)
        for (int x = 0; x < 3; x++) assert_int_equal(dst.data[y * 3 + x], 10 * ys[y] + xs[x]);
    aibox_image_free(&dst);
    /* many sizes against floor(dst * in / out), the formula, RGB */
    aibox_image rgb = make_image(13, 11, 3, 4);
    const int outs[][2] = {{26, 22}, {4, 5}, {13, 1}, {1, 11}, {40, 3}};
    for (int s = 0; s < 5; s++) {
        int ow = outs[s][0], oh = outs[s][1];
        assert_int_equal(aibox_image_resize(&dst, &rgb, ow, oh, AIBOX_RESIZE_NEAREST, NULL), AIBOX_OK);
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++) {
                int sx = x * 13 / ow, sy = y * 11 / oh;
                assert_memory_equal(dst.data + ((size_t)y * ow + x) * 3, rgb.data + ((size_t)sy * 13 + sx) * 3, 3);
            }
        aibox_image_free(&dst);
    }
    aibox_image_free(&rgb);
    /* TensorFlow computes the scale in float: 2 -> 82, column 41 reads
     * source 0 (41 * (float)(2/82) falls just below 1), not floor(41*2/82) = 1 */
    aibox_image two = {2, 1, 1, (uint8_t[]){5, 9}};
    assert_int_equal(aibox_image_resize(&dst, &two, 82, 1, AIBOX_RESIZE_NEAREST, NULL), AIBOX_OK);
    assert_int_equal(dst.data[40], 5);
    assert_int_equal(dst.data[41], 5);
    assert_int_equal(dst.data[42], 9);
    aibox_image_free(&dst);
    aibox_image_free(&src);
}

/* ------------------------------------------------------------------ encoders, writes */

static void test_encode_args(void **state)
{
    (void)state;
    aibox_image im = make_image(4, 4, 3, 0), bad = {4, 4, 2, im.data};
    uint8_t *p = (uint8_t *)1;
    size_t n = 9;
    aibox_error err = {0};
    assert_int_equal(aibox_image_encode_jpg(&im, 0, &p, &n, &err), AIBOX_E_INVALID);
    assert_null(p);
    assert_int_equal(n, 0);
    assert_non_null(strstr(err.msg, "quality 0"));
    assert_int_equal(aibox_image_encode_jpg(&im, 101, &p, &n, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_image_encode_jpg(&bad, 90, &p, &n, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_image_encode_png(&bad, &p, &n, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_image_encode_png(NULL, &p, &n, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_image_encode_png(&im, NULL, &n, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_image_encode_png(&im, &p, NULL, &err), AIBOX_E_INVALID);
    for (int q = 1; q <= 100; q += 99) { /* both ends of the range */
        assert_int_equal(aibox_image_encode_jpg(&im, q, &p, &n, &err), AIBOX_OK);
        assert_true(n > 100);
        free(p);
    }
    aibox_image_free(&im);
}

static void test_write_roundtrip(void **state)
{
    (void)state;
    char path[256];
    aibox_error err = {0};
    const int chans[] = {1, 3, 4};
    for (int i = 0; i < 3; i++) {
        aibox_image src = make_image(19, 12, chans[i], (unsigned)i), got;
        path_in(path, sizeof path, "out.png");
        assert_int_equal(aibox_image_write_png(&src, path, &err), AIBOX_OK); /* the second and third overwrite */
        assert_int_equal(aibox_image_load(&got, path, 0, &err), AIBOX_OK);
        assert_int_equal(got.channels, chans[i]);
        assert_memory_equal(got.data, src.data, (size_t)19 * 12 * chans[i]);
        aibox_image_free(&got);
        aibox_image_free(&src);
    }
    aibox_image smooth = {32, 32, 3, malloc(32 * 32 * 3)}, got;
    fill_smooth(smooth.data, 32, 32, 3);
    path_in(path, sizeof path, "out.jpg");
    assert_int_equal(aibox_image_write_jpg(&smooth, path, 95, &err), AIBOX_OK);
    assert_int_equal(aibox_image_load(&got, path, 0, &err), AIBOX_OK);
    assert_int_equal(got.channels, 3);
    assert_true(max_abs_diff(got.data, smooth.data, 32 * 32 * 3) <= 12);
    aibox_image_free(&got);
    /* created like any file: 0666 less the umask */
    mode_t mask = umask(0);
    umask(mask);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0666 & ~mask);
    assert_int_equal(dir_count(g_dir), 2); /* out.png, out.jpg: no temporary files left */
    unlink(path);
    path_in(path, sizeof path, "out.png");
    unlink(path);
    aibox_image_free(&smooth);
}

static void test_write_failures(void **state)
{
    (void)state;
    char path[256], keep[256];
    aibox_error err = {0};
    aibox_image im = make_image(64, 64, 3, 7);

    /* a directory that does not exist: clean failure, nothing created */
    path_in(path, sizeof path, "no/such/dir/x.png");
    assert_int_equal(aibox_image_write_png(&im, path, &err), AIBOX_E_IO);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, strerror(ENOENT)));
    assert_int_equal(dir_count(g_dir), 0);
    assert_int_equal(aibox_image_write_jpg(&im, path, 90, &err), AIBOX_E_IO);
    assert_int_equal(dir_count(g_dir), 0);

    /* an existing file survives a refused image and a refused quality */
    path_in(keep, sizeof keep, "keep.png");
    write_file(keep, "old contents", 12);
    aibox_image bad = {64, 64, 2, im.data};
    assert_int_equal(aibox_image_write_png(&bad, keep, &err), AIBOX_E_INVALID);
    assert_non_null(strstr(err.msg, keep));
    assert_int_equal(aibox_image_write_jpg(&im, keep, 0, &err), AIBOX_E_INVALID);
    buf b = read_whole(keep);
    assert_int_equal(b.n, 12);
    assert_memory_equal(b.p, "old contents", 12);
    free(b.p);

    /* the write itself fails (file size limit: EFBIG): old file intact, no temporary left */
    struct rlimit old_lim, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old_lim), 0);
    void (*old_sig)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old_lim;
    lim.rlim_cur = 100;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    aibox_status st = aibox_image_write_png(&im, keep, &err); /* 64x64 of pattern: well over 100 bytes */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old_lim), 0);
    signal(SIGXFSZ, old_sig);
    assert_int_equal(st, AIBOX_E_IO);
    assert_non_null(strstr(err.msg, keep));
    assert_non_null(strstr(err.msg, strerror(EFBIG)));
    b = read_whole(keep);
    assert_int_equal(b.n, 12);
    assert_memory_equal(b.p, "old contents", 12);
    free(b.p);
    assert_int_equal(dir_count(g_dir), 1);

    /* the target is a directory: rename fails, the directory and its file stay */
    path_in(path, sizeof path, "adir");
    assert_int_equal(mkdir(path, 0700), 0);
    char inner[300];
    snprintf(inner, sizeof inner, "%s/inner", path);
    write_file(inner, "x", 1);
    assert_int_equal(aibox_image_write_png(&im, path, &err), AIBOX_E_IO);
    assert_non_null(strstr(err.msg, "rename"));
    assert_int_equal(dir_count(path), 1);
    assert_int_equal(dir_count(g_dir), 2); /* keep.png, adir */
    unlink(inner);
    rmdir(path);
    unlink(keep);

    assert_int_equal(aibox_image_write_png(&im, "", &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_image_write_jpg(&im, NULL, 90, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_image_write_png(NULL, keep, &err), AIBOX_E_INVALID);
    assert_int_equal(dir_count(g_dir), 0);
    aibox_image_free(&im);
}

/* ------------------------------------------------------------------ main */

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/aibox_image_test.XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_8bit),
        cmocka_unit_test(test_png_16bit),
        cmocka_unit_test(test_png_palette),
        cmocka_unit_test(test_png_palette_index_past_plte),
        cmocka_unit_test(test_png_empty_idat),
        cmocka_unit_test(test_jpeg_tables_undefined),
        cmocka_unit_test(test_decode_independent_of_memory),
        cmocka_unit_test(test_pnm),
        cmocka_unit_test(test_bmp_tga),
        cmocka_unit_test(test_gif_first_frame),
        cmocka_unit_test(test_jpeg),
        cmocka_unit_test(test_one_pixel),
        cmocka_unit_test(test_corrupt_inputs),
        cmocka_unit_test(test_oversized_headers),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_copy_free),
        cmocka_unit_test(test_convert),
        cmocka_unit_test(test_resize_mode_names),
        cmocka_unit_test(test_resize_args),
        cmocka_unit_test(test_resize_area),
        cmocka_unit_test(test_resize_bilinear),
        cmocka_unit_test(test_resize_nearest),
        cmocka_unit_test(test_encode_args),
        cmocka_unit_test(test_write_roundtrip),
        cmocka_unit_test(test_write_failures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
