/* Truncation, as a class: a sample file of every format and variant the
 * decoder accepts (PNG, JPEG, BMP, PGM/PPM, TGA, GIF), written here by hand
 * or by libaibox's own encoders, first decodes to the pixels it was written
 * with; then EVERY prefix of every sample (1 .. length - 1 bytes) must be
 * refused with AIBOX_E_CORRUPT or AIBOX_E_FORMAT, never decoded. A sample
 * may declare a shorter length complete when the bytes after it are ones
 * stb never reads (a BMP's last-row padding, data after a JPEG's EOI, a
 * TGA footer): those prefixes must decode to exactly the same pixels. The
 * real pictures under $AIBOX_DATA/../models/tflite run too when present.
 * Small odd sizes (13x7, 5x3) exercise row padding and keep every prefix
 * cheap; each prefix is decoded from a buffer of exactly its length so that
 * AddressSanitizer sees any read past it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <zlib.h>

#include "aibox.h"

/* ------------------------------------------------------------------ bytes */

typedef struct {
    uint8_t *p;
    size_t n;
} buf;

static void add(buf *b, const void *d, size_t n)
{
    b->p = realloc(b->p, b->n + n + 1);
    assert_non_null(b->p);
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void add8(buf *b, unsigned v)
{
    uint8_t c = (uint8_t)v;
    add(b, &c, 1);
}
static void add16le(buf *b, unsigned v) { add8(b, v), add8(b, v >> 8); }
static void add32le(buf *b, uint32_t v) { add16le(b, v & 0xFFFF), add16le(b, v >> 16); }
static void add32be(buf *b, uint32_t v) { add8(b, v >> 24), add8(b, v >> 16), add8(b, v >> 8), add8(b, v); }
static void put32le(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24); }

/* A deterministic pattern byte for pixel (x, y), channel k. */
static uint8_t pat(int x, int y, int k, int seed) { return (uint8_t)(x * 37 + y * 91 + k * 53 + seed * 29); }

/* ------------------------------------------------------------------ samples */

typedef struct {
    char name[64];
    buf file;
    aibox_image want; /* the pixels the file holds; data NULL: only the size is known (real files) */
    int tol;          /* largest per-sample difference allowed (lossy JPEG) */
    size_t min_ok;    /* the shortest prefix that holds every byte stb reads */
} sample;

typedef struct {
    sample *s;
    int n;
} sample_set;

/* Takes ownership of file.p; copies the expected pixels. */
static sample *push(sample_set *set, const char *name, buf file, int w, int h, int c, const uint8_t *px)
{
    set->s = realloc(set->s, sizeof *set->s * (size_t)(set->n + 1));
    assert_non_null(set->s);
    sample *s = &set->s[set->n++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->file = file;
    s->want = (aibox_image){w, h, c, NULL};
    if (px) {
        s->want.data = malloc((size_t)w * h * c);
        assert_non_null(s->want.data);
        memcpy(s->want.data, px, (size_t)w * h * c);
    }
    s->min_ok = file.n;
    return s;
}

static void free_set(sample_set *set)
{
    for (int i = 0; i < set->n; i++) {
        free(set->s[i].file.p);
        free(set->s[i].want.data);
    }
    free(set->s);
    set->s = NULL, set->n = 0;
}

/* ------------------------------------------------------------------ PNG */

static void png_chunk(buf *b, const char *type, const uint8_t *d, size_t n)
{
    add32be(b, (uint32_t)n);
    size_t at = b->n;
    add(b, type, 4);
    add(b, d, n);
    add32be(b, (uint32_t)crc32(0, b->p + at, (uInt)(n + 4)));
}

/* A PNG of raw rows (filter byte 0 added here), its zlib stream split over
 * `idats` IDAT chunks; optional PLTE and tRNS, and a tEXt chunk after the
 * data when `text` is set. */
static buf png_file(int w, int h, int depth, int ctype, const uint8_t *rows, size_t row_bytes, const uint8_t *plte,
                    int plte_n, const uint8_t *trns, int trns_n, int idats, int text)
{
    buf b = {0};
    add(&b, "\x89PNG\r\n\x1a\n", 8);
    uint8_t ihdr[13] = {0};
    ihdr[0] = (uint8_t)(w >> 24), ihdr[1] = (uint8_t)(w >> 16), ihdr[2] = (uint8_t)(w >> 8), ihdr[3] = (uint8_t)w;
    ihdr[4] = (uint8_t)(h >> 24), ihdr[5] = (uint8_t)(h >> 16), ihdr[6] = (uint8_t)(h >> 8), ihdr[7] = (uint8_t)h;
    ihdr[8] = (uint8_t)depth, ihdr[9] = (uint8_t)ctype;
    png_chunk(&b, "IHDR", ihdr, 13);
    if (plte) png_chunk(&b, "PLTE", plte, (size_t)plte_n * 3);
    if (trns) png_chunk(&b, "tRNS", trns, (size_t)trns_n);
    size_t raw_n = (row_bytes + 1) * (size_t)h;
    uint8_t *raw = malloc(raw_n);
    assert_non_null(raw);
    for (int y = 0; y < h; y++) {
        raw[y * (row_bytes + 1)] = 0;
        memcpy(raw + y * (row_bytes + 1) + 1, rows + y * row_bytes, row_bytes);
    }
    uLongf zn = compressBound(raw_n);
    uint8_t *z = malloc(zn);
    assert_non_null(z);
    assert_int_equal(compress2(z, &zn, raw, raw_n, 9), Z_OK);
    size_t part = (zn + (size_t)idats - 1) / (size_t)idats;
    for (size_t at = 0; at < zn; at += part) png_chunk(&b, "IDAT", z + at, at + part <= zn ? part : zn - at);
    if (text) png_chunk(&b, "tEXt", (const uint8_t *)"Comment\0after the data", 23);
    png_chunk(&b, "IEND", NULL, 0);
    free(z);
    free(raw);
    return b;
}

static void png_samples(sample_set *set)
{
    const int W = 13, H = 7;
    uint8_t px[13 * 7 * 4], rows[13 * 7 * 8];
    /* 8-bit grey, RGB and RGBA through the library's own encoder */
    const int chans[3] = {1, 3, 4};
    for (int i = 0; i < 3; i++) {
        aibox_image im = {W, H, chans[i], px};
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int k = 0; k < chans[i]; k++) px[(y * W + x) * chans[i] + k] = pat(x, y, k, i);
        buf b = {0};
        assert_int_equal(aibox_image_encode_png(&im, &b.p, &b.n, NULL), AIBOX_OK);
        char name[32];
        snprintf(name, sizeof name, "png 8-bit %d channel(s)", chans[i]);
        push(set, name, b, W, H, chans[i], px);
    }
    /* 16-bit grey, RGB, RGBA and grey + alpha: round(v / 257); grey + alpha comes back as RGBA */
    const int types[4] = {0, 2, 6, 4}, samples_per_px[4] = {1, 3, 4, 2};
    for (int t = 0; t < 4; t++) {
        int spp = samples_per_px[t], out_c = spp == 2 ? 4 : spp;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int k = 0; k < spp; k++) {
                    unsigned v = (unsigned)(x * 5003 + y * 9001 + k * 17011 + t * 3) & 0xFFFF;
                    uint8_t *r = rows + (size_t)y * W * spp * 2 + (size_t)(x * spp + k) * 2;
                    r[0] = (uint8_t)(v >> 8), r[1] = (uint8_t)v;
                    uint8_t e = (uint8_t)((510u * v + 65535u) / 131070u);
                    if (spp == 2) {
                        uint8_t *o = px + (y * W + x) * 4;
                        if (k == 0) o[0] = o[1] = o[2] = e;
                        else o[3] = e;
                    } else {
                        px[(y * W + x) * spp + k] = e;
                    }
                }
        char name[32];
        snprintf(name, sizeof name, "png 16-bit colour type %d", types[t]);
        push(set, name, png_file(W, H, 16, types[t], rows, (size_t)W * spp * 2, NULL, 0, NULL, 0, 1, 0), W, H, out_c, px);
    }
    /* 8-bit palette; palette with tRNS (RGBA); 4-bit palette; 1-bit grey;
     * grey + alpha; the data split over three IDATs with a tEXt after them */
    uint8_t plte[6 * 3];
    for (int i = 0; i < 18; i++) plte[i] = (uint8_t)(i * 41 + 7);
    const uint8_t trns[3] = {0, 128, 255};
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) rows[y * W + x] = (uint8_t)((x + 2 * y) % 6);
    for (int i = 0; i < W * H; i++) memcpy(px + 3 * i, plte + 3 * rows[i], 3);
    push(set, "png palette 8-bit", png_file(W, H, 8, 3, rows, W, plte, 6, NULL, 0, 1, 0), W, H, 3, px);
    for (int i = 0; i < W * H; i++) {
        memcpy(px + 4 * i, plte + 3 * rows[i], 3);
        px[4 * i + 3] = rows[i] < 3 ? trns[rows[i]] : 255;
    }
    push(set, "png palette + tRNS", png_file(W, H, 8, 3, rows, W, plte, 6, trns, 3, 1, 0), W, H, 4, px);
    uint8_t packed[7 * 8] = {0};
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int idx = (x + 2 * y) % 6;
            packed[y * 7 + x / 2] |= (uint8_t)(idx << (x % 2 ? 0 : 4));
            memcpy(px + 3 * (y * W + x), plte + 3 * idx, 3);
        }
    push(set, "png palette 4-bit", png_file(W, H, 4, 3, packed, 7, plte, 6, NULL, 0, 1, 0), W, H, 3, px);
    memset(packed, 0, sizeof packed);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int bit = (x * 3 + y) % 5 < 2;
            packed[y * 2 + x / 8] |= (uint8_t)(bit << (7 - x % 8));
            px[y * W + x] = bit ? 255 : 0;
        }
    push(set, "png 1-bit grey", png_file(W, H, 1, 0, packed, 2, NULL, 0, NULL, 0, 1, 0), W, H, 1, px);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t g = pat(x, y, 0, 5), a = pat(x, y, 1, 5);
            rows[(y * W + x) * 2] = g, rows[(y * W + x) * 2 + 1] = a;
            uint8_t *o = px + (y * W + x) * 4;
            o[0] = o[1] = o[2] = g, o[3] = a;
        }
    push(set, "png grey + alpha 8-bit", png_file(W, H, 8, 4, rows, W * 2, NULL, 0, NULL, 0, 1, 0), W, H, 4, px);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int k = 0; k < 3; k++) px[(y * W + x) * 3 + k] = rows[(y * W + x) * 3 + k] = pat(x, y, k, 6);
    push(set, "png 3 IDATs + tEXt", png_file(W, H, 8, 2, rows, W * 3, NULL, 0, NULL, 0, 3, 1), W, H, 3, px);
}

/* ------------------------------------------------------------------ JPEG */

/* 16x8 progressive JPEG (10 scans, SOF2) of R = 16x, G = 32y, B = 255 - 16x:
 * stb_image_write at quality 95, then `jpegtran -progressive -optimize
 * -copy none` (the fixture of test_image.c). */
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
    for (size_t i = 0; hex[i] && hex[i + 1]; i += 2) {
        unsigned v;
        assert_int_equal(sscanf(hex + i, "%2x", &v), 1);
        add8(&b, v);
    }
    return b;
}

static void smooth(uint8_t *p, int w, int h, int c)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++)
                p[(y * w + x) * c + k] = (uint8_t)(k == 0 ? 40 + x * 12 : k == 1 ? 60 + y * 20 : 200 - x * 6 - y * 4);
}

static void jpeg_samples(sample_set *set)
{
    const int W = 13, H = 7;
    uint8_t px[13 * 7 * 3];
    smooth(px, W, H, 3);
    aibox_image im = {W, H, 3, px};
    buf b = {0};
    assert_int_equal(aibox_image_encode_jpg(&im, 95, &b.p, &b.n, NULL), AIBOX_OK);
    buf base = {0};
    add(&base, b.p, b.n);
    push(set, "jpeg baseline", b, W, H, 3, px)->tol = 24;

    /* a comment segment right after SOI holding FF D9: the walk must skip it by its length */
    buf com = {0};
    add(&com, base.p, 2);
    const uint8_t seg[] = {0xFF, 0xFE, 0x00, 0x0A, 'e', 'o', 'i', 0xFF, 0xD9, ' ', 'x', 'y'};
    add(&com, seg, sizeof seg);
    add(&com, base.p + 2, base.n - 2);
    push(set, "jpeg with FF D9 in a comment", com, W, H, 3, px)->tol = 24;

    /* a fill byte before SOI, which stb accepts (FF FF D8) */
    buf fill = {0};
    add8(&fill, 0xFF);
    add(&fill, base.p, base.n);
    push(set, "jpeg with a fill byte before SOI", fill, W, H, 3, px)->tol = 24;

    /* bytes after EOI (a phone's motion photo): prefixes keeping EOI decode the same */
    buf motion = {0};
    add(&motion, base.p, base.n);
    static const char video[] = "\0\0ftypmp42 and a video that stb never reads";
    add(&motion, video, sizeof video - 1);
    sample *s = push(set, "jpeg with data after EOI", motion, W, H, 3, px);
    s->tol = 24;
    s->min_ok = base.n;
    free(base.p);

    /* grey: stb_image_write stores YCbCr, decoded as 3 equal channels */
    uint8_t g[13 * 7], g3[13 * 7 * 3];
    smooth(g, W, H, 1);
    for (int i = 0; i < W * H; i++) g3[3 * i] = g3[3 * i + 1] = g3[3 * i + 2] = g[i];
    aibox_image gi = {W, H, 1, g};
    b = (buf){0};
    assert_int_equal(aibox_image_encode_jpg(&gi, 90, &b.p, &b.n, NULL), AIBOX_OK);
    push(set, "jpeg grey", b, W, H, 3, g3)->tol = 24;

    /* progressive */
    uint8_t prog[16 * 8 * 3];
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 16; x++) {
            uint8_t *o = prog + (y * 16 + x) * 3;
            o[0] = (uint8_t)(16 * x), o[1] = (uint8_t)(32 * y), o[2] = (uint8_t)(255 - 16 * x);
        }
    push(set, "jpeg progressive", from_hex(PROGRESSIVE_JPEG_HEX), 16, 8, 3, prog)->tol = 12;
}

/* ------------------------------------------------------------------ BMP */

typedef struct {
    int hsz, bpp, comp, top_down;
    uint32_t masks[4];   /* R, G, B, A: written for BI_BITFIELDS and in 56/108/124-byte headers */
    const uint8_t *pal;  /* RGB triples */
    int npal;
} bmp_kind;

/* raw[y * w + x] (top row first) is a palette index, a 16-bit word, 0xRRGGBB
 * (24 bits) or a 32-bit word. Returns the file; *pad_last is the padding of
 * the last row written. */
static buf bmp_file(const bmp_kind *k, int w, int h, const uint32_t *raw, size_t *pad_last)
{
    buf b = {0};
    int masks_after = k->hsz == 40 && k->comp == 3;
    size_t entry = k->hsz == 12 ? 3 : 4;
    size_t off = 14 + (size_t)k->hsz + (masks_after ? 12 : 0) + (size_t)k->npal * entry;
    size_t row = k->bpp == 1 ? ((size_t)w + 7) / 8 : k->bpp == 4 ? ((size_t)w + 1) / 2 : (size_t)w * (size_t)(k->bpp / 8);
    size_t stride = (row + 3) / 4 * 4;
    add(&b, "BM", 2);
    add32le(&b, (uint32_t)(off + stride * (size_t)h));
    add32le(&b, 0);
    add32le(&b, (uint32_t)off);
    add32le(&b, (uint32_t)k->hsz);
    if (k->hsz == 12) {
        add16le(&b, (unsigned)w), add16le(&b, (unsigned)h), add16le(&b, 1), add16le(&b, (unsigned)k->bpp);
    } else {
        add32le(&b, (uint32_t)w), add32le(&b, (uint32_t)(k->top_down ? -h : h)), add16le(&b, 1), add16le(&b, (unsigned)k->bpp);
        add32le(&b, (uint32_t)k->comp), add32le(&b, (uint32_t)(stride * (size_t)h)), add32le(&b, 2835), add32le(&b, 2835);
        add32le(&b, (uint32_t)k->npal), add32le(&b, 0);
        if (k->hsz >= 56)
            for (int i = 0; i < 4; i++) add32le(&b, k->masks[i]);
        if (k->hsz >= 108) {
            add32le(&b, 0x73524742); /* 'sRGB' */
            for (int i = 0; i < 12; i++) add32le(&b, 0);
        }
        if (k->hsz == 124)
            for (int i = 0; i < 4; i++) add32le(&b, i == 0 ? 4 : 0);
        if (masks_after)
            for (int i = 0; i < 3; i++) add32le(&b, k->masks[i]);
    }
    for (int i = 0; i < k->npal; i++) {
        add8(&b, k->pal[3 * i + 2]), add8(&b, k->pal[3 * i + 1]), add8(&b, k->pal[3 * i]);
        if (entry == 4) add8(&b, 0);
    }
    assert_int_equal(b.n, off);
    uint8_t *line = calloc(stride, 1);
    assert_non_null(line);
    for (int fy = 0; fy < h; fy++) {
        int y = k->top_down ? fy : h - 1 - fy;
        memset(line, 0, stride);
        for (int x = 0; x < w; x++) {
            uint32_t v = raw[y * w + x];
            switch (k->bpp) {
            case 1: line[x / 8] |= (uint8_t)(v << (7 - x % 8)); break;
            case 4: line[x / 2] |= (uint8_t)(v << (x % 2 ? 0 : 4)); break;
            case 8: line[x] = (uint8_t)v; break;
            case 16: line[2 * x] = (uint8_t)v, line[2 * x + 1] = (uint8_t)(v >> 8); break;
            case 24: line[3 * x] = (uint8_t)v, line[3 * x + 1] = (uint8_t)(v >> 8), line[3 * x + 2] = (uint8_t)(v >> 16); break;
            default: put32le(line + 4 * x, v);
            }
        }
        add(&b, line, stride);
    }
    free(line);
    *pad_last = stride - row;
    return b;
}

/* stb widens an n-bit field by repeating its bits: (v5 * 33) >> 2, (v6 * 65) >> 4. */
static uint8_t widen(uint32_t v, int bits) { return (uint8_t)(bits == 5 ? (v * 33) >> 2 : bits == 6 ? (v * 65) >> 4 : v); }

static void bmp_samples(sample_set *set)
{
    const int sizes[2][2] = {{13, 7}, {5, 3}};
    uint8_t pal[256 * 3];
    for (int i = 0; i < 256 * 3; i++) pal[i] = (uint8_t)(i * 67 + 11);
    const bmp_kind kinds[] = {
        {40, 1, 0, 0, {0}, pal, 2},
        {40, 4, 0, 1, {0}, pal, 11},
        {40, 8, 0, 0, {0}, pal, 200},
        {40, 8, 0, 1, {0}, pal, 256},
        {40, 16, 0, 0, {0}, NULL, 0},                                        /* BI_RGB: 5-5-5 */
        {40, 16, 3, 1, {0xF800, 0x07E0, 0x001F, 0}, NULL, 0},                /* BI_BITFIELDS 5-6-5 */
        {40, 24, 0, 0, {0}, NULL, 0},
        {40, 24, 0, 1, {0}, NULL, 0},
        {40, 32, 0, 0, {0}, NULL, 0},                                        /* BGRX, X = 0: opaque */
        {40, 32, 3, 1, {0xFF0000, 0xFF00, 0xFF, 0}, NULL, 0},                /* BI_BITFIELDS, no alpha */
        {108, 32, 3, 0, {0xFF0000, 0xFF00, 0xFF, 0xFF000000u}, NULL, 0},     /* V4 with alpha */
        {124, 24, 0, 0, {0}, NULL, 0},                                       /* V5, as cat.bmp */
        {124, 8, 0, 1, {0}, pal, 16},
        {56, 24, 0, 1, {0}, NULL, 0},
        {12, 24, 0, 0, {0}, NULL, 0},                                        /* OS/2 */
    };
    for (size_t ki = 0; ki < sizeof kinds / sizeof kinds[0]; ki++)
        for (int si = 0; si < 2; si++) {
            const bmp_kind *k = &kinds[ki];
            int w = sizes[si][0], h = sizes[si][1];
            int c = k->bpp == 32 && (k->comp == 0 || k->masks[3]) ? 4 : 3;
            uint32_t raw[13 * 7];
            uint8_t px[13 * 7 * 4];
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    uint8_t *o = px + (y * w + x) * c;
                    uint8_t r = pat(x, y, 0, (int)ki), g = pat(x, y, 1, (int)ki), bl = pat(x, y, 2, (int)ki),
                            a = (uint8_t)(pat(x, y, 3, (int)ki) | 1);
                    uint32_t v;
                    if (k->bpp <= 8) {
                        v = (uint32_t)(x * 7 + y * 3 + (int)ki) % (uint32_t)k->npal;
                        memcpy(o, k->pal + 3 * v, 3);
                    } else if (k->bpp == 16) {
                        int gb = k->comp == 3 ? 6 : 5;
                        uint32_t r5 = r >> 3, gg = g >> (8 - gb), b5 = bl >> 3;
                        v = gb == 6 ? r5 << 11 | gg << 5 | b5 : r5 << 10 | gg << 5 | b5;
                        o[0] = widen(r5, 5), o[1] = widen(gg, gb), o[2] = widen(b5, 5);
                    } else {
                        v = (uint32_t)r << 16 | (uint32_t)g << 8 | bl;
                        o[0] = r, o[1] = g, o[2] = bl;
                        if (c == 4) {
                            if (k->masks[3]) v |= (uint32_t)a << 24, o[3] = a;
                            else o[3] = 255; /* an all-zero fourth byte is read as opaque */
                        }
                    }
                    raw[y * w + x] = v;
                }
            size_t pad;
            buf b = bmp_file(k, w, h, raw, &pad);
            char name[64];
            snprintf(name, sizeof name, "bmp %d-byte header %d-bit%s%s %dx%d", k->hsz, k->bpp,
                     k->comp == 3 ? " bitfields" : "", k->top_down ? " top-down" : "", w, h);
            sample *s = push(set, name, b, w, h, c, px);
            s->min_ok = b.n - pad; /* the last row's padding is optional (see image.c) */
        }
}

/* ------------------------------------------------------------------ PGM / PPM */

static void pnm_samples(sample_set *set)
{
    const int W = 13, H = 7;
    struct {
        const char *head;
        int c, maxv;
    } kinds[] = {
        {"P5\n13 7\n255\n", 1, 255}, {"P6 13 7 255\n", 3, 255},       {"P5\n# a comment\n13 7\n65535\n", 1, 65535},
        {"P6\n13\t7\n65535\n", 3, 65535}, {"P5 13 7 1000\n", 1, 1000}, {"P6 13 7 15\n", 3, 15},
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        buf b = {0};
        add(&b, kinds[i].head, strlen(kinds[i].head));
        uint8_t px[13 * 7 * 3];
        int c = kinds[i].c;
        uint32_t m = (uint32_t)kinds[i].maxv;
        for (int j = 0; j < W * H * c; j++) {
            uint32_t v = (uint32_t)(j * 2654435761u >> 7) % (m + 1);
            if (m > 255) add8(&b, v >> 8);
            add8(&b, v);
            px[j] = (uint8_t)((510u * v + m) / (2u * m));
        }
        char name[48];
        snprintf(name, sizeof name, "%s maxval %d", c == 1 ? "pgm" : "ppm", kinds[i].maxv);
        push(set, name, b, W, H, c, px);
    }
}

/* ------------------------------------------------------------------ TGA */

typedef struct {
    int type;       /* 1, 2, 3; + 8 for RLE */
    int bits;       /* per pixel (index bits when colour-mapped) */
    int map_bits;   /* colour map entry bits (colour-mapped only) */
    int top_down;
    int footer;     /* a TGA 2.0 footer after the data (stb never reads it) */
} tga_kind;

/* TGA RLE packets over the pixel sequence: runs of 2+ equal pixels as
 * repeat packets, the rest as raw packets; packets cross rows freely. */
static void tga_rle(buf *b, const uint8_t *pix, size_t n, size_t size)
{
    size_t i = 0;
    while (i < n) {
        size_t run = 1;
        while (i + run < n && run < 128 && !memcmp(pix + (i + run) * size, pix + i * size, size)) run++;
        if (run >= 2) {
            add8(b, 0x80 | (unsigned)(run - 1));
            add(b, pix + i * size, size);
            i += run;
            continue;
        }
        size_t lit = 1;
        while (i + lit < n && lit < 128 &&
               (i + lit + 1 >= n || memcmp(pix + (i + lit) * size, pix + (i + lit + 1) * size, size)))
            lit++;
        add8(b, (unsigned)(lit - 1));
        add(b, pix + i * size, lit * size);
        i += lit;
    }
}

static void tga_samples(sample_set *set)
{
    const tga_kind kinds[] = {
        {2, 24, 0, 0, 0}, {2, 32, 0, 1, 0}, {2, 16, 0, 0, 0}, {2, 15, 0, 1, 0},  {3, 8, 0, 0, 0},
        {3, 16, 0, 1, 0}, {1, 8, 24, 0, 0}, {1, 8, 16, 1, 0}, {1, 16, 32, 0, 0}, {1, 8, 8, 1, 0},
        {10, 24, 0, 0, 0}, {10, 32, 0, 1, 0}, {10, 16, 0, 0, 0}, {11, 8, 0, 1, 0}, {9, 8, 24, 0, 0},
        {9, 16, 15, 1, 0}, {2, 24, 0, 1, 1},  {10, 24, 0, 0, 1},
    };
    const int sizes[2][2] = {{13, 7}, {5, 3}};
    for (size_t ki = 0; ki < sizeof kinds / sizeof kinds[0]; ki++)
        for (int si = 0; si < 2; si++) {
            const tga_kind *k = &kinds[ki];
            int w = sizes[si][0], h = sizes[si][1], base = k->type & 7, rle = k->type >= 8;
            int mapped = base == 1, nmap = 9;
            int ebits = mapped ? k->map_bits : k->bits;
            size_t size = (size_t)(k->bits + 7) / 8, esize = (size_t)(ebits + 7) / 8;
            int c = ebits == 8 ? 1 : ebits == 16 && base == 3 ? 4 /* grey + alpha, widened */ : ebits == 32 ? 4 : 3;
            /* colour map entries (file bytes) and what they decode to */
            uint8_t map[9 * 4];
            for (int e = 0; e < nmap; e++)
                for (size_t j = 0; j < 4; j++) map[e * 4 + (int)j] = pat(e, 1, (int)j, (int)ki);
            /* one value per pixel, runs of 3 so that RLE has repeats crossing rows */
            uint8_t file_px[13 * 7 * 4], px[13 * 7 * 4];
            for (int fy = 0; fy < h; fy++)
                for (int x = 0; x < w; x++) {
                    int y = k->top_down ? fy : h - 1 - fy, i = fy * w + x, seq = i / 3;
                    uint8_t *f = file_px + (size_t)i * size, *o = px + (y * w + x) * c;
                    const uint8_t *src;
                    uint8_t own[4];
                    if (mapped) {
                        int idx = (seq * 5 + (int)ki) % nmap;
                        f[0] = (uint8_t)idx;
                        if (size == 2) f[1] = 0;
                        src = map + idx * 4;
                    } else {
                        for (int j = 0; j < 4; j++) own[j] = pat(seq, 2, j, (int)ki);
                        memcpy(f, own, size);
                        src = own;
                    }
                    /* what stb makes of `ebits` bits at src */
                    if (ebits == 15 || (ebits == 16 && base != 3)) {
                        unsigned v = (unsigned)src[0] | (unsigned)src[1] << 8;
                        o[0] = (uint8_t)(((v >> 10) & 31) * 255 / 31), o[1] = (uint8_t)(((v >> 5) & 31) * 255 / 31);
                        o[2] = (uint8_t)((v & 31) * 255 / 31);
                    } else if (ebits == 16) {
                        o[0] = o[1] = o[2] = src[0], o[3] = src[1];
                    } else if (ebits == 8) {
                        o[0] = src[0];
                    } else {
                        o[0] = src[2], o[1] = src[1], o[2] = src[0];
                        if (ebits == 32) o[3] = src[3];
                    }
                }
            buf b = {0};
            const char *id = "an id";
            add8(&b, (unsigned)strlen(id)), add8(&b, (unsigned)mapped), add8(&b, (unsigned)k->type);
            add16le(&b, 0), add16le(&b, mapped ? (unsigned)nmap : 0), add8(&b, mapped ? (unsigned)ebits : 0);
            add16le(&b, 0), add16le(&b, 0), add16le(&b, (unsigned)w), add16le(&b, (unsigned)h);
            add8(&b, (unsigned)k->bits), add8(&b, (k->top_down ? 0x20u : 0) | (ebits == 32 ? 8u : 0));
            add(&b, id, strlen(id));
            if (mapped)
                for (int e = 0; e < nmap; e++) add(&b, map + e * 4, esize);
            if (rle) tga_rle(&b, file_px, (size_t)w * h, size);
            else add(&b, file_px, (size_t)w * h * size);
            size_t data_end = b.n;
            if (k->footer) {
                add32le(&b, 0), add32le(&b, 0);
                add(&b, "TRUEVISION-XFILE.", 18);
            }
            char name[64];
            snprintf(name, sizeof name, "tga type %d %d-bit%s%s%s %dx%d", k->type, k->bits, mapped ? " mapped" : "",
                     k->top_down ? " top-down" : "", k->footer ? " footer" : "", w, h);
            sample *s = push(set, name, b, w, h, c, px);
            s->min_ok = data_end;
        }
}

/* ------------------------------------------------------------------ GIF */

/* LZW for GIF at a fixed code size: a clear code before every run of
 * 2^m - 2 indices keeps the decoder's table from growing a code size.
 * Writes the minimum code size, the data sub-blocks and the terminator. */
static void gif_lzw(buf *b, const uint8_t *idx, size_t n, int m)
{
    unsigned clear = 1u << m, size = (unsigned)m + 1, run = clear - 2;
    buf codes = {0};
    uint32_t acc = 0;
    unsigned have = 0;
#define EMIT(code)                                            \
    do {                                                      \
        acc |= (uint32_t)(code) << have, have += size;        \
        while (have >= 8) add8(&codes, acc & 255), acc >>= 8, have -= 8; \
    } while (0)
    for (size_t i = 0; i < n; i++) {
        if (i % run == 0) EMIT(clear);
        EMIT(idx[i]);
    }
    EMIT(clear + 1);
    if (have) add8(&codes, acc);
#undef EMIT
    add8(b, (unsigned)m);
    for (size_t at = 0; at < codes.n; at += 255) {
        size_t k = codes.n - at < 255 ? codes.n - at : 255;
        add8(b, (unsigned)k);
        add(b, codes.p + at, k);
    }
    add8(b, 0);
    free(codes.p);
}

typedef struct {
    int x, y, w, h;    /* the frame's rectangle */
    int local_bits;    /* colour table bits of a local table, 0: none */
    int interlaced;
    int transparent;   /* index, or -1 */
} gif_frame;

static void gif_image(buf *b, const gif_frame *f, const uint8_t *idx, int m)
{
    if (f->transparent >= 0) {
        const uint8_t gce[] = {0x21, 0xF9, 4, 1, 10, 0, (uint8_t)f->transparent, 0};
        add(b, gce, sizeof gce);
    }
    add8(b, 0x2C), add16le(b, (unsigned)f->x), add16le(b, (unsigned)f->y), add16le(b, (unsigned)f->w),
        add16le(b, (unsigned)f->h);
    add8(b, (f->local_bits ? 0x80u | (unsigned)(f->local_bits - 1) : 0) | (f->interlaced ? 0x40u : 0));
    if (f->local_bits)
        for (int e = 0; e < 1 << f->local_bits; e++) add8(b, pat(e, 3, 0, 1)), add8(b, pat(e, 3, 1, 1)), add8(b, pat(e, 3, 2, 1));
    /* interlaced: rows 0, 8, 16 ..., then 4, 12 ..., then 2, 6 ..., then 1, 3 ... */
    uint8_t order[64 * 64];
    size_t n = 0;
    const int start[4] = {0, 4, 2, 1}, step[4] = {8, 8, 4, 2};
    for (int pass = 0; pass < (f->interlaced ? 4 : 1); pass++)
        for (int y = f->interlaced ? start[pass] : 0; y < f->h; y += f->interlaced ? step[pass] : 1)
            for (int x = 0; x < f->w; x++) order[n++] = idx[y * f->w + x];
    gif_lzw(b, order, n, m < 2 ? 2 : m);
}

static void gif_samples(sample_set *set)
{
    const int W = 13, H = 7;
    struct {
        const char *name;
        int version87, global_bits, bg;
        gif_frame f;
        int second, extensions;
    } kinds[] = {
        {"gif 8 colours", 0, 3, 0, {0, 0, 13, 7, 0, 0, -1}, 0, 0},
        {"gif87a 2 colours", 1, 1, 0, {0, 0, 13, 7, 0, 0, -1}, 0, 0},
        {"gif transparency + comment", 0, 3, 0, {0, 0, 13, 7, 0, 0, 2}, 0, 1},
        {"gif local table, interlaced", 0, 0, 0, {0, 0, 13, 7, 4, 1, -1}, 0, 0},
        {"gif two frames + loop extension", 0, 3, 0, {0, 0, 13, 7, 0, 0, -1}, 1, 1},
        {"gif frame inside the screen, background 5", 0, 3, 5, {3, 2, 7, 4, 0, 0, -1}, 0, 0},
        {"gif frame inside the screen, local table", 0, 2, 0, {1, 1, 9, 5, 3, 1, 1}, 1, 0},
    };
    for (size_t ki = 0; ki < sizeof kinds / sizeof kinds[0]; ki++) {
        const gif_frame *f = &kinds[ki].f;
        int gbits = kinds[ki].global_bits, bits = f->local_bits ? f->local_bits : gbits;
        buf b = {0};
        add(&b, kinds[ki].version87 ? "GIF87a" : "GIF89a", 6);
        add16le(&b, (unsigned)W), add16le(&b, (unsigned)H);
        add8(&b, gbits ? 0x80u | 0x70u | (unsigned)(gbits - 1) : 0x70u), add8(&b, (unsigned)kinds[ki].bg), add8(&b, 0);
        uint8_t global[256 * 3] = {0};
        for (int e = 0; e < (gbits ? 1 << gbits : 0); e++)
            for (int j = 0; j < 3; j++) {
                /* the background entry grey: stb fills the background from
                 * its BGR-ordered table without swapping to RGB */
                global[e * 3 + j] = e == kinds[ki].bg && e ? 90 : pat(e, 4, j, (int)ki);
                add8(&b, global[e * 3 + j]);
            }
        if (kinds[ki].extensions) {
            static const char comment[] = "\x21\xFE\x05hello\x03gif\x00";
            static const char loop[] = "\x21\xFF\x0BNETSCAPE2.0\x03\x01\x00\x00\x00"; /* loop forever */
            add(&b, comment, sizeof comment - 1);
            add(&b, loop, sizeof loop - 1);
        }
        uint8_t idx[13 * 7];
        for (int i = 0; i < f->w * f->h; i++) idx[i] = (uint8_t)((i * 7 + (int)ki) % (1 << bits));
        gif_image(&b, f, idx, bits);
        if (kinds[ki].second) {
            gif_frame g2 = {0, 0, W, H, 2, 0, -1};
            uint8_t idx2[13 * 7];
            for (int i = 0; i < W * H; i++) idx2[i] = (uint8_t)(i % 4);
            gif_image(&b, &g2, idx2, 2);
        }
        add8(&b, 0x3B);
        /* the first frame as stb renders it (RGBA): the frame's pixels, but
         * transparent ones left 0; outside the frame 0, or the global
         * background colour (opaque) when its index is above 0 */
        uint8_t px[13 * 7 * 4] = {0};
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                uint8_t *o = px + (y * W + x) * 4;
                int inside = x >= f->x && x < f->x + f->w && y >= f->y && y < f->y + f->h;
                if (!inside) {
                    if (kinds[ki].bg > 0) memcpy(o, global + 3 * kinds[ki].bg, 3), o[3] = 255;
                    continue;
                }
                int i = idx[(y - f->y) * f->w + (x - f->x)];
                if (i == f->transparent) continue;
                if (f->local_bits) o[0] = pat(i, 3, 0, 1), o[1] = pat(i, 3, 1, 1), o[2] = pat(i, 3, 2, 1);
                else memcpy(o, global + 3 * i, 3);
                o[3] = 255;
            }
        push(set, kinds[ki].name, b, W, H, 4, px);
    }
}

/* ------------------------------------------------------------------ real files */

/* $AIBOX_DATA/../models/tflite (or ../shared/models/tflite): burger.jpg
 * (baseline), cats_and_dogs.jpg (progressive), sparrow.png, cat.bmp. */
static int real_samples(sample_set *set)
{
    const char *data = getenv("AIBOX_DATA");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/../models/tflite", data ? data : "../shared/data");
    const char *names[] = {"burger.jpg", "cats_and_dogs.jpg", "sparrow.png", "cat.bmp"};
    int found = 0;
    for (int i = 0; i < 4; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        buf b = {0};
        uint8_t tmp[65536];
        size_t r;
        while ((r = fread(tmp, 1, sizeof tmp, f)) > 0) add(&b, tmp, r);
        fclose(f);
        aibox_image im;
        assert_int_equal(aibox_image_decode(&im, b.p, b.n, names[i], 0, NULL), AIBOX_OK);
        push(set, names[i], b, im.width, im.height, im.channels, NULL);
        aibox_image_free(&im);
        found++;
    }
    return found;
}

/* ------------------------------------------------------------------ the class */

typedef struct {
    long prefixes, corrupt, format, tolerated;
} tally;

static int worst_diff(const aibox_image *a, const aibox_image *b)
{
    int m = 0;
    for (size_t i = 0; i < (size_t)a->width * a->height * a->channels; i++) {
        int d = abs((int)a->data[i] - (int)b->data[i]);
        m = d > m ? d : m;
    }
    return m;
}

/* The whole file decodes to its pixels; every prefix below min_ok is
 * refused (CORRUPT or FORMAT, naming the file); every prefix from min_ok
 * on decodes to the same pixels as the whole. `copy`: decode each prefix
 * from a buffer of exactly its size. */
static void check_sample(const sample *s, tally *t, int copy)
{
    aibox_image full;
    aibox_error err = {0};
    aibox_status st = aibox_image_decode(&full, s->file.p, s->file.n, s->name, 0, &err);
    if (st) fprintf(stderr, "%s: whole file: %s\n", s->name, err.msg);
    assert_int_equal(st, AIBOX_OK);
    if (full.width != s->want.width || full.height != s->want.height || full.channels != s->want.channels)
        fprintf(stderr, "%s: decoded %dx%dx%d, want %dx%dx%d\n", s->name, full.width, full.height, full.channels,
                s->want.width, s->want.height, s->want.channels);
    assert_int_equal(full.width, s->want.width);
    assert_int_equal(full.height, s->want.height);
    assert_int_equal(full.channels, s->want.channels);
    if (s->want.data) {
        int d = worst_diff(&full, &s->want);
        if (d > s->tol) fprintf(stderr, "%s: pixels differ by up to %d (tolerance %d)\n", s->name, d, s->tol);
        assert_true(d <= s->tol);
    }
    uint8_t *tmp = copy ? malloc(s->file.n) : NULL;
    for (size_t n = 1; n < s->file.n; n++) {
        const uint8_t *p = s->file.p;
        if (copy) {
            memcpy(tmp, s->file.p, n);
            p = tmp;
        }
        aibox_image im = {9, 9, 9, (uint8_t *)1};
        err = (aibox_error){0};
        st = aibox_image_decode(&im, p, n, s->name, 0, &err);
        t->prefixes++;
        if (n >= s->min_ok) {
            if (st) fprintf(stderr, "%s: %zu-byte prefix holds everything stb reads, yet: %s\n", s->name, n, err.msg);
            assert_int_equal(st, AIBOX_OK);
            assert_int_equal(worst_diff(&im, &full), 0);
            aibox_image_free(&im);
            t->tolerated++;
            continue;
        }
        if (st == AIBOX_OK || (st != AIBOX_E_CORRUPT && st != AIBOX_E_FORMAT) || !strstr(err.msg, s->name)) {
            fprintf(stderr, "%s: %zu of %zu bytes: status %d, \"%s\"\n", s->name, n, s->file.n, st, err.msg);
            aibox_image_free(&im);
        }
        assert_int_not_equal(st, AIBOX_OK);
        assert_true(st == AIBOX_E_CORRUPT || st == AIBOX_E_FORMAT);
        assert_non_null(strstr(err.msg, s->name));
        assert_null(im.data);
        if (st == AIBOX_E_FORMAT && getenv("AIBOX_TEST_VERBOSE")) printf("#   %zu bytes: %s\n", n, err.msg);
        t->corrupt += st == AIBOX_E_CORRUPT;
        t->format += st == AIBOX_E_FORMAT;
    }
    free(tmp);
    aibox_image_free(&full);
}

static void run_set(const char *what, sample_set *set, int copy)
{
    tally t = {0};
    for (int i = 0; i < set->n; i++) check_sample(&set->s[i], &t, copy);
    printf("# %s: %d samples, %ld prefixes: %ld CORRUPT, %ld FORMAT, %ld complete (bytes stb never reads cut)\n", what,
           set->n, t.prefixes, t.corrupt, t.format, t.tolerated);
    free_set(set);
}

static void test_png_prefixes(void **state)
{
    (void)state;
    sample_set set = {0};
    png_samples(&set);
    run_set("PNG", &set, 1);
}

static void test_jpeg_prefixes(void **state)
{
    (void)state;
    sample_set set = {0};
    jpeg_samples(&set);
    run_set("JPEG", &set, 1);
}

static void test_bmp_prefixes(void **state)
{
    (void)state;
    sample_set set = {0};
    bmp_samples(&set);
    run_set("BMP", &set, 1);
}

static void test_pnm_prefixes(void **state)
{
    (void)state;
    sample_set set = {0};
    pnm_samples(&set);
    run_set("PGM/PPM", &set, 1);
}

static void test_tga_prefixes(void **state)
{
    (void)state;
    sample_set set = {0};
    tga_samples(&set);
    run_set("TGA", &set, 1);
}

static void test_gif_prefixes(void **state)
{
    (void)state;
    sample_set set = {0};
    gif_samples(&set);
    run_set("GIF", &set, 1);
}

/* The real pictures, every prefix (decoded in place: copying each would be
 * quadratic in their size). */
static void test_real_file_prefixes(void **state)
{
    (void)state;
    sample_set set = {0};
    if (!real_samples(&set)) {
        print_message("real pictures not found ($AIBOX_DATA/../models/tflite): skipped\n");
        skip();
    }
    run_set("real files", &set, 0);
}

/* ------------------------------------------------------------------ messages */

static void expect(const void *p, size_t n, aibox_status want, const char *frag)
{
    aibox_image im;
    aibox_error err = {0};
    aibox_status st = aibox_image_decode(&im, p, n, "cut.img", 0, &err);
    if (st != want || !strstr(err.msg, frag)) fprintf(stderr, "got %d \"%s\", want %d \"%s\"\n", st, err.msg, want, frag);
    assert_int_equal(st, want);
    assert_non_null(strstr(err.msg, frag));
    assert_non_null(strstr(err.msg, "cut.img: "));
}

/* One line naming the file and where the data ends, per format. */
static void test_messages(void **state)
{
    (void)state;
    sample_set set = {0};
    bmp_samples(&set);
    const sample *bmp8 = NULL, *bmp24 = NULL;
    for (int i = 0; i < set.n; i++) {
        if (!strcmp(set.s[i].name, "bmp 40-byte header 8-bit 13x7")) bmp8 = &set.s[i];
        if (!strcmp(set.s[i].name, "bmp 40-byte header 24-bit 13x7")) bmp24 = &set.s[i];
    }
    assert_non_null(bmp8);
    assert_non_null(bmp24);
    /* the 33-byte prefix: stb read the rest of the header as zeros */
    expect(bmp8->file.p, 33, AIBOX_E_CORRUPT, "truncated BMP (header: 33 of 54 bytes)");
    /* rows of 40 bytes (39 + 1 pad): 6 whole rows and 39 bytes of the last are needed */
    expect(bmp24->file.p, 54 + 100, AIBOX_E_CORRUPT, "truncated BMP (pixel data: 100 of 279 bytes)");
    /* a palette image whose pixel data offset leaves no room for the palette:
     * stb would look its indices up in uninitialised memory */
    buf nopal = {0};
    add(&nopal, bmp8->file.p, bmp8->file.n);
    put32le(nopal.p + 10, 54);
    expect(nopal.p, nopal.n, AIBOX_E_FORMAT, "malformed BMP (pixel data offset 54 leaves room for 0 palette entries)");
    free(nopal.p);
    free_set(&set);

    gif_samples(&set);
    const buf *gif = &set.s[0].file; /* 13x7, 8 colours: 13 + 24 bytes of header and table, then the image */
    expect(gif->p, 37, AIBOX_E_CORRUPT, "truncated GIF (no trailer)");
    expect(gif->p, 50, AIBOX_E_CORRUPT, "truncated GIF (image data sub-block at byte 48:");
    expect(gif->p, gif->n - 1, AIBOX_E_CORRUPT, "truncated GIF (no trailer)");
    buf junk = {0};
    add(&junk, gif->p, gif->n - 1);
    add8(&junk, 0x00); /* a zero where the trailer belongs */
    expect(junk.p, junk.n, AIBOX_E_FORMAT, "malformed GIF (block 0x00 at byte");
    free(junk.p);
    free_set(&set);

    tga_samples(&set);
    for (int i = 0; i < set.n; i++) {
        const sample *s = &set.s[i];
        if (!strcmp(s->name, "tga type 2 24-bit 13x7"))
            expect(s->file.p, s->file.n - 10, AIBOX_E_CORRUPT, "truncated TGA (pixel data: 263 of 273 bytes)");
        if (!strcmp(s->name, "tga type 10 24-bit 13x7"))
            expect(s->file.p, s->file.n - 4, AIBOX_E_CORRUPT, "truncated TGA (RLE data covers ");
        if (!strcmp(s->name, "tga type 1 8-bit mapped 13x7")) {
            expect(s->file.p, 30, AIBOX_E_CORRUPT, "truncated TGA (header and colour map: 30 of 50 bytes)");
            /* a colour map starting at entry 1: stb would skip 1 byte instead, shifting every colour */
            s->file.p[3] = 1;
            expect(s->file.p, s->file.n, AIBOX_E_UNSUPPORTED, "TGA colour maps starting at entry 1 are not supported");
        }
    }
    free_set(&set);

    png_samples(&set);
    expect(set.s[0].file.p, 40, AIBOX_E_CORRUPT, "truncated PNG (chunk at byte 33: 7 of at least 12 bytes)");
    expect(set.s[0].file.p, 50, AIBOX_E_CORRUPT, "truncated PNG (chunk IDAT at byte 33: 17 of ");
    expect(set.s[0].file.p, set.s[0].file.n - 12, AIBOX_E_CORRUPT, "truncated PNG (no IEND chunk)");
    expect(set.s[0].file.p, set.s[0].file.n - 1, AIBOX_E_CORRUPT, "truncated PNG (chunk IEND at byte");
    free_set(&set);

    jpeg_samples(&set);
    expect(set.s[0].file.p, set.s[0].file.n - 1, AIBOX_E_CORRUPT, "truncated JPEG (no end-of-image marker)");
    expect(set.s[0].file.p, 30, AIBOX_E_CORRUPT, "truncated JPEG (segment FFDB at byte 20: 10 of 134 bytes)");
    free_set(&set);

    pnm_samples(&set);
    expect(set.s[0].file.p, set.s[0].file.n - 1, AIBOX_E_CORRUPT, "truncated PGM/PPM (90 of 91 sample bytes)");
    free_set(&set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_prefixes), cmocka_unit_test(test_jpeg_prefixes),
        cmocka_unit_test(test_bmp_prefixes), cmocka_unit_test(test_pnm_prefixes),
        cmocka_unit_test(test_tga_prefixes), cmocka_unit_test(test_gif_prefixes),
        cmocka_unit_test(test_real_file_prefixes), cmocka_unit_test(test_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
