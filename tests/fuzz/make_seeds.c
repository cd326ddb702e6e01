/* Writes the seed corpora of the .aibox, image and text fuzz targets into
 * DIR/aibox, DIR/image and DIR/text (`make fuzz-seeds` runs it on
 * tests/fuzz/corpus; the TFLite and safetensors seeds come from
 * make_corpus.py). Deterministic: the same bytes on every run.
 *
 * .aibox: small real models saved by the library (a conv net, a dense net,
 * one with every graph node kind, a grouped/frozen one, a fitted PaDiM).
 * Images: PNG, JPEG, BMP, TGA, PGM/PPM and GIF in the variants stb_image
 * reads (bit depths, palettes, alpha, interlacing, RLE, 16-bit samples),
 * written by the library's encoders or laid out here byte by byte.
 * Text: labels files and metadata fields as fuzz_text.c splits them. */
#include <errno.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "aibox.h"

static const char *g_dir;

static void die(const char *what, const aibox_error *err)
{
    fprintf(stderr, "make_seeds: %s: %s\n", what, err ? err->msg : strerror(errno));
    exit(1);
}

static void put(const char *sub, const char *name, const void *b, size_t n)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", g_dir, sub);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/%s/%s", g_dir, sub, name);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(b, 1, n, f) != n || fclose(f)) die(p, NULL);
}

/* ------------------------------------------------------------ byte buffer */
typedef struct {
    uint8_t *b;
    size_t n, cap;
} buf;

static void add(buf *o, const void *p, size_t n)
{
    if (o->n + n > o->cap) {
        o->cap = (o->n + n) * 2 + 64;
        o->b = realloc(o->b, o->cap);
        if (!o->b) die("realloc", NULL);
    }
    memcpy(o->b + o->n, p, n);
    o->n += n;
}
static void u8(buf *o, unsigned v) { uint8_t x = (uint8_t)v; add(o, &x, 1); }
static void le16(buf *o, unsigned v) { u8(o, v & 255), u8(o, v >> 8 & 255); }
static void le32(buf *o, uint32_t v) { le16(o, v & 0xffff), le16(o, v >> 16); }
static void be32(buf *o, uint32_t v) { u8(o, v >> 24), u8(o, v >> 16 & 255), u8(o, v >> 8 & 255), u8(o, v & 255); }
static void str(buf *o, const char *s) { add(o, s, strlen(s)); }
static void putbuf(const char *sub, const char *name, buf *o)
{
    put(sub, name, o->b, o->n);
    free(o->b);
    memset(o, 0, sizeof *o);
}

/* A deterministic pixel pattern. */
static uint8_t px(int x, int y, int c) { return (uint8_t)(x * 37 + y * 71 + c * 101 + (x ^ y) * 13); }

/* ------------------------------------------------------------ .aibox */
static void save(aibox_model *m, const char *name)
{
    aibox_error err = {0};
    char p[512];
    snprintf(p, sizeof p, "%s/aibox", g_dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/aibox/%s", g_dir, name);
    if (aibox_model_save(m, p, &err)) die(name, &err);
}

static void finish(aibox_model *m, const char *what)
{
    aibox_error err = {0};
    if (aibox_model_finish(m, 7, &err)) die(what, &err);
}

static void aibox_seeds(void)
{
    aibox_error err = {0};
    aibox_model *m = NULL;
    /* conv net with classes and preprocessing */
    if (aibox_model_create(&m, 1, 8, 8, &err)) die("conv", &err);
    int x = aibox_conv2d_simple(m, 0, 4, 3, 1, 1);
    x = aibox_relu(m, x);
    aibox_pool_opts po = {2, 2, 2, 2, 0, 0, 0, 0, 0, 0};
    x = aibox_maxpool(m, x, &po);
    x = aibox_flatten(m, x);
    x = aibox_dense(m, x, 3, 1);
    x = aibox_softmax(m, x);
    finish(m, "conv");
    const char *names[3] = {"ok", "scratch", "dent"};
    aibox_preproc pp;
    aibox_preproc_default(&pp, m);
    pp.resize = AIBOX_RESIZE_BILINEAR, pp.mean[0] = 0.5f, pp.std[0] = 0.25f;
    if (aibox_model_set_meta_strs(m, "aibox.class_names", 3, names, &err) || aibox_preproc_to_model(&pp, m, &err) ||
        aibox_model_set_meta_str(m, "aibox.task", "classify", &err) ||
        aibox_model_set_meta_int(m, "aibox.seed", -42, &err) || aibox_model_set_meta_float(m, "aibox.threshold", 0.5, &err))
        die("conv meta", &err);
    save(m, "conv_net.aibox");
    aibox_model_free(&m);

    /* dense net on a vector */
    if (aibox_model_create(&m, 6, 1, 1, &err)) die("dense", &err);
    x = aibox_dense(m, 0, 8, 1);
    x = aibox_sigmoid(m, x);
    x = aibox_dropout(m, x, 0.25f);
    x = aibox_dense(m, x, 2, 0);
    finish(m, "dense");
    save(m, "dense_net.aibox");
    aibox_model_free(&m);

    /* every other node kind: batch norm, add, concat, upsampling, padding, pools, clamps, quantise */
    if (aibox_model_create(&m, 3, 8, 8, &err)) die("mixed", &err);
    int a = aibox_conv2d_simple(m, 0, 4, 3, 1, 1);
    int b = aibox_conv2d_simple(m, 0, 4, 1, 1, 0);
    int s = aibox_add(m, a, b);
    s = aibox_batchnorm(m, s, 1e-5f, 0.1f);
    int cat[2] = {a, s};
    int c = aibox_concat(m, 2, cat);
    c = aibox_upsample_nearest(m, c, 16, 16);
    c = aibox_upsample_bilinear(m, c, 8, 8);
    c = aibox_relu6(m, c);
    c = aibox_zeropad(m, c, 1, 0, 0, 1);
    aibox_pool_opts ap = {3, 3, 2, 2, 1, 1, 1, 1, 1, 1};
    c = aibox_avgpool(m, c, &ap);
    c = aibox_leaky_relu(m, c, 0.1f);
    c = aibox_clamp(m, c, -2.0f, 2.0f);
    c = aibox_quantize(m, c, 0.05f, 3.0f, 0.0f, 255.0f);
    c = aibox_global_avgpool(m, c);
    finish(m, "mixed");
    save(m, "mixed_nodes.aibox");
    aibox_model_free(&m);

    /* grouped and strided convolutions, a frozen trunk, an explicit output */
    if (aibox_model_create(&m, 4, 9, 7, &err)) die("grouped", &err);
    aibox_conv_opts co = {8, 3, 2, 2, 1, 1, 0, 1, 1, 2, 1};
    x = aibox_conv2d(m, 0, &co);
    aibox_conv_opts dw = {8, 3, 3, 1, 1, 1, 1, 1, 1, 8, 0};
    int y = aibox_conv2d(m, x, &dw);
    aibox_pool_opts mp = {2, 2, 0, 0, 0, 0, 1, 1, 1, 0};
    int z = aibox_maxpool(m, y, &mp);
    aibox_global_avgpool(m, z);
    aibox_model_set_output(m, z);
    finish(m, "grouped");
    aibox_model_set_frozen(m, x, 1);
    save(m, "grouped_frozen.aibox");

    /* PaDiM on that backbone: taps at strides 1 and 2, 4 dimensions, fitted on 3 images */
    aibox_model *bb = NULL;
    if (aibox_model_create(&bb, 3, 16, 16, &err)) die("padim backbone", &err);
    x = aibox_conv2d_simple(bb, 0, 4, 3, 2, 1);
    x = aibox_relu(bb, x);
    x = aibox_conv2d_simple(bb, x, 6, 3, 2, 1);
    x = aibox_relu(bb, x);
    finish(bb, "padim backbone");
    aibox_padim_opts o = {0};
    o.n_taps = 2, o.strides[0] = 2, o.strides[1] = 4, o.dims = 4, o.projection = AIBOX_PADIM_RANDOM, o.seed = 3;
    for (int proj = 0; proj < 2; proj++) {
        aibox_padim_fit *f = NULL;
        aibox_padim *p = NULL;
        o.projection = proj ? AIBOX_PADIM_ORTHOGONAL : AIBOX_PADIM_RANDOM;
        if (aibox_padim_fit_begin(&f, bb, &o, 3, 1, &err)) die("padim fit", &err);
        float img[3 * 3 * 16 * 16];
        for (size_t i = 0; i < sizeof img / sizeof img[0]; i++) img[i] = (float)px((int)i, (int)(i >> 4), 1) / 255.0f;
        if (aibox_padim_fit_add(f, img, 3, &err) || aibox_padim_fit_end(f, &p, &err)) die("padim fit", &err);
        aibox_padim_fit_free(&f);
        char p2[512];
        snprintf(p2, sizeof p2, "%s/aibox/padim_%s.aibox", g_dir, proj ? "orthogonal" : "random");
        if (aibox_padim_save(p, p2, &err)) die("padim save", &err);
        aibox_padim_free(&p);
    }
    /* PatchCore on it: the same taps, half the patches kept, thresholds set so
     * a detector loads it whole; once with the bank stored as float16 (dtype 2) */
    for (int half = 0; half < 2; half++) {
        aibox_patchcore_opts pco = {.n_taps = 2, .strides = {2, 4}, .coreset = 0.5, .proj_dims = 4, .seed = 3,
                                    .half_bank = half};
        aibox_patchcore_fit *f = NULL;
        aibox_patchcore *p = NULL;
        float img[3 * 3 * 16 * 16];
        for (size_t i = 0; i < sizeof img / sizeof img[0]; i++) img[i] = (float)px((int)i, (int)(i >> 4), 1) / 255.0f;
        if (aibox_patchcore_fit_begin(&f, bb, &pco, 3, 1, &err) || aibox_patchcore_fit_add(f, img, 3, &err) ||
            aibox_patchcore_fit_end(f, &p, &err))
            die("patchcore fit", &err);
        aibox_patchcore_fit_free(&f);
        aibox_thresholds t = {.image = 1, .pixel = 1, .score_min = 0, .score_max = 2, .image_f1 = NAN};
        char p2[512];
        snprintf(p2, sizeof p2, "%s/aibox/patchcore%s.aibox", g_dir, half ? "_f16" : "");
        if (aibox_thresholds_to_model(&t, aibox_patchcore_model(p), &err) || aibox_patchcore_save(p, p2, &err))
            die("patchcore save", &err);
        aibox_patchcore_free(&p);
    }
    /* the auto-encoder: a tiny network trained for one epoch, thresholds set */
    {
        aibox_autoencoder_opts ao = {.size = 32, .channels = 3, .width = 2, .latent = 2, .epochs = 1, .batch = 3,
                                     .seed = 3};
        aibox_autoencoder_fit *f = NULL;
        aibox_autoencoder *ae = NULL;
        float img[3 * 3 * 32 * 32];
        for (size_t i = 0; i < sizeof img / sizeof img[0]; i++) img[i] = (float)px((int)i, (int)(i >> 5), 1) / 255.0f;
        if (aibox_autoencoder_fit_begin(&f, &ao, 1, &err) || aibox_autoencoder_fit_add(f, img, 3, &err) ||
            aibox_autoencoder_fit_end(f, &ae, &err))
            die("autoencoder fit", &err);
        aibox_autoencoder_fit_free(&f);
        aibox_thresholds t = {.image = 1, .pixel = 1, .score_min = 0, .score_max = 2, .image_f1 = NAN};
        char p2[512];
        snprintf(p2, sizeof p2, "%s/aibox/autoencoder.aibox", g_dir);
        if (aibox_thresholds_to_model(&t, aibox_autoencoder_model(ae), &err) || aibox_autoencoder_save(ae, p2, &err))
            die("autoencoder save", &err);
        aibox_autoencoder_free(&ae);
    }
    aibox_model_free(&bb);
    aibox_model_free(&m);
}

/* ------------------------------------------------------------ PNG by hand */
static void chunk(buf *o, const char *type, const uint8_t *d, size_t n)
{
    be32(o, (uint32_t)n);
    size_t at = o->n;
    str(o, type);
    if (n) add(o, d, n);
    be32(o, (uint32_t)crc32(0, o->b + at, (uInt)(n + 4)));
}

/* w x h, colour type ct, bit depth bd; samples from px(); interlace: Adam7. */
static void png(const char *name, int w, int h, int ct, int bd, int interlace)
{
    static const int chans[7] = {1, 0, 3, 1, 2, 0, 4};
    int ch = chans[ct];
    buf raw = {0}, o = {0};
    static const int x0[7] = {0, 4, 0, 2, 0, 1, 0}, y0[7] = {0, 0, 4, 0, 2, 0, 1}, dx[7] = {8, 8, 4, 4, 2, 2, 1},
                     dy[7] = {8, 8, 8, 4, 4, 2, 2};
    for (int pass = 0; pass < (interlace ? 7 : 1); pass++) {
        int sx = interlace ? x0[pass] : 0, sy = interlace ? y0[pass] : 0, stx = interlace ? dx[pass] : 1,
            sty = interlace ? dy[pass] : 1;
        int pw = (w - sx + stx - 1) / stx, ph = (h - sy + sty - 1) / sty;
        if (pw <= 0 || ph <= 0) continue;
        for (int yy = 0; yy < ph; yy++) {
            u8(&raw, (unsigned)(yy % 5)); /* every filter type */
            int bits = 0;
            unsigned acc = 0;
            for (int xx = 0; xx < pw; xx++)
                for (int c = 0; c < ch; c++) {
                    unsigned v = px(sx + xx * stx, sy + yy * sty, c);
                    if (bd == 16) le16(&raw, (v << 8 | v) >> 8 | (v << 8 & 0xff00)); /* big-endian v,v */
                    else if (bd == 8) u8(&raw, v);
                    else {
                        if (ct == 3) v %= 4;
                        acc = acc << bd | (v >> (8 - bd) & ((1u << bd) - 1)) % (ct == 3 ? 4u : 256u);
                        if ((bits += bd) == 8) u8(&raw, acc), acc = 0, bits = 0;
                    }
                }
            if (bits) u8(&raw, acc << (8 - bits));
        }
    }
    uLongf zn = compressBound(raw.n);
    uint8_t *z = malloc(zn);
    if (!z || compress2(z, &zn, raw.b, raw.n, 9) != Z_OK) die("zlib", NULL);
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    add(&o, sig, 8);
    uint8_t ihdr[13] = {0, 0, 0, (uint8_t)w, 0, 0, 0, (uint8_t)h, (uint8_t)bd, (uint8_t)ct, 0, 0, (uint8_t)interlace};
    chunk(&o, "IHDR", ihdr, 13);
    if (ct == 3) {
        uint8_t pal[12] = {0, 0, 0, 255, 0, 0, 0, 255, 0, 20, 40, 250};
        uint8_t trns[2] = {0, 128};
        chunk(&o, "PLTE", pal, 12);
        chunk(&o, "tRNS", trns, 2);
    }
    if (ct == 0 && bd == 8) {
        uint8_t trns[2] = {0, 7};
        chunk(&o, "tRNS", trns, 2);
    }
    chunk(&o, "tEXt", (const uint8_t *)"Comment\0seed", 12);
    chunk(&o, "IDAT", z, zn);
    chunk(&o, "IEND", NULL, 0);
    free(z);
    free(raw.b);
    putbuf("image", name, &o);
}

/* ------------------------------------------------------------ BMP, TGA, PNM, GIF by hand */
static void bmp(const char *name, int w, int h, int bpp, int topdown, int rle8)
{
    buf pix = {0}, o = {0};
    int ncol = bpp <= 8 ? 1 << bpp : 0;
    if (rle8) {
        for (int y = 0; y < h; y++) {
            u8(&pix, (unsigned)w), u8(&pix, (unsigned)(y % 4)); /* a run of one index per row */
            u8(&pix, 0), u8(&pix, 0);                          /* end of line */
        }
        u8(&pix, 0), u8(&pix, 1); /* end of bitmap */
    } else {
        for (int y = 0; y < h; y++) {
            size_t start = pix.n;
            int bits = 0;
            unsigned acc = 0;
            for (int x = 0; x < w; x++) {
                if (bpp >= 24)
                    for (int c = 0; c < bpp / 8; c++) u8(&pix, px(x, y, c));
                else if (bpp == 16) le16(&pix, (unsigned)(px(x, y, 0) * 129) & 0x7fff);
                else {
                    acc = acc << bpp | (px(x, y, 0) & (ncol - 1));
                    if ((bits += bpp) == 8) u8(&pix, acc), acc = 0, bits = 0;
                }
            }
            if (bits) u8(&pix, acc << (8 - bits));
            while ((pix.n - start) % 4) u8(&pix, 0);
        }
    }
    uint32_t off = 14 + 40 + 4 * (uint32_t)ncol;
    str(&o, "BM");
    le32(&o, off + (uint32_t)pix.n), le32(&o, 0), le32(&o, off);
    le32(&o, 40), le32(&o, (uint32_t)w), le32(&o, (uint32_t)(topdown ? -h : h)), le16(&o, 1), le16(&o, (unsigned)bpp);
    le32(&o, rle8 ? 1 : 0), le32(&o, (uint32_t)pix.n), le32(&o, 2835), le32(&o, 2835), le32(&o, (uint32_t)ncol), le32(&o, 0);
    for (int i = 0; i < ncol; i++) u8(&o, px(i, 0, 0)), u8(&o, px(i, 1, 1)), u8(&o, px(i, 2, 2)), u8(&o, 0);
    add(&o, pix.b, pix.n);
    free(pix.b);
    putbuf("image", name, &o);
}

/* type 1 colour-mapped, 2 true colour, 3 grey; +8 RLE */
static void tga(const char *name, int w, int h, int type, int bpp)
{
    buf o = {0};
    int cmap = (type & 7) == 1;
    u8(&o, 3); /* id length */
    u8(&o, (unsigned)cmap), u8(&o, (unsigned)type);
    le16(&o, 0), le16(&o, cmap ? 16 : 0), u8(&o, cmap ? 24 : 0); /* colour map spec */
    le16(&o, 0), le16(&o, 0), le16(&o, (unsigned)w), le16(&o, (unsigned)h), u8(&o, (unsigned)bpp), u8(&o, 0x20);
    str(&o, "ids");
    for (int i = 0; i < (cmap ? 16 : 0); i++) u8(&o, px(i, 0, 0)), u8(&o, px(i, 0, 1)), u8(&o, px(i, 0, 2));
    int bytes = bpp / 8;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w;) {
            if (type & 8) { /* alternate runs of 3 and raw packets of 2 */
                int n = (x / 5) % 2 ? 2 : 3;
                if (n > w - x) n = w - x;
                u8(&o, (unsigned)((x / 5) % 2 ? n - 1 : 0x80 | (n - 1)));
                for (int k = 0; k < ((x / 5) % 2 ? n : 1); k++)
                    for (int c = 0; c < bytes; c++) u8(&o, cmap ? px(x + k, y, 0) % 16 : px(x + k, y, c));
                x += n;
            } else {
                for (int c = 0; c < bytes; c++) u8(&o, cmap ? px(x, y, 0) % 16 : px(x, y, c));
                x++;
            }
        }
    putbuf("image", name, &o);
}

static void pnm(const char *name, int p6, int w, int h, int maxv)
{
    buf o = {0};
    char hd[96];
    snprintf(hd, sizeof hd, "P%d\n# seed\n%d %d\n%d\n", p6 ? 6 : 5, w, h, maxv);
    str(&o, hd);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < (p6 ? 3 : 1); c++) {
                unsigned v = (unsigned)px(x, y, c) * (unsigned)maxv / 255u;
                if (maxv > 255) u8(&o, v >> 8);
                u8(&o, v & 255);
            }
    putbuf("image", name, &o);
}

/* LZW with a clear code after every two literals, so codes stay 3 bits wide. */
static void gif_frame(buf *o, int w, int h, int left, int top, int shift)
{
    u8(o, 0x2C), le16(o, (unsigned)left), le16(o, (unsigned)top), le16(o, (unsigned)w), le16(o, (unsigned)h), u8(o, 0);
    u8(o, 2); /* minimum code size */
    buf bits = {0};
    uint32_t acc = 0;
    int nb = 0, lit = 0;
#define CODE(v) (acc |= (uint32_t)(v) << nb, nb += 3, (void)(nb >= 8 ? (u8(&bits, acc & 255), acc >>= 8, nb -= 8) : 0))
    CODE(4);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            CODE((px(x, y, shift) >> 3) & 3);
            if (++lit == 2) CODE(4), lit = 0;
        }
    CODE(5);
#undef CODE
    if (nb) u8(&bits, acc & 255);
    for (size_t i = 0; i < bits.n; i += 255) {
        size_t n = bits.n - i < 255 ? bits.n - i : 255;
        u8(o, (unsigned)n);
        add(o, bits.b + i, n);
    }
    u8(o, 0);
    free(bits.b);
}

static void gif(const char *name, int w, int h, int frames)
{
    buf o = {0};
    str(&o, "GIF89a");
    le16(&o, (unsigned)w), le16(&o, (unsigned)h), u8(&o, 0xF1), u8(&o, 0), u8(&o, 0); /* global table of 4 */
    static const uint8_t pal[12] = {0, 0, 0, 255, 255, 255, 200, 30, 30, 30, 30, 200};
    add(&o, pal, 12);
    for (int f = 0; f < frames; f++) {
        static const uint8_t gce[8] = {0x21, 0xF9, 4, 0x09, 10, 0, 2, 0}; /* transparent index 2, delay 10 */
        add(&o, gce, 8);
        gif_frame(&o, f ? w / 2 : w, f ? h / 2 : h, f ? 1 : 0, f ? 1 : 0, f);
    }
    u8(&o, 0x3B);
    putbuf("image", name, &o);
}

static void image_seeds(void)
{
    aibox_error err = {0};
    for (int ch = 1; ch <= 4; ch++) {
        if (ch == 2) continue;
        aibox_image img = {9, 7, ch, malloc((size_t)9 * 7 * ch)};
        for (int y = 0; y < 7; y++)
            for (int x = 0; x < 9; x++)
                for (int c = 0; c < ch; c++) img.data[(y * 9 + x) * ch + c] = px(x, y, c);
        uint8_t *b = NULL;
        size_t n = 0;
        char name[64];
        if (aibox_image_encode_png(&img, &b, &n, &err)) die("png", &err);
        snprintf(name, sizeof name, "lib_%dch.png", ch);
        put("image", name, b, n);
        free(b);
        for (int q = 0; q < 2 && ch != 4; q++) {
            if (aibox_image_encode_jpg(&img, q ? 95 : 40, &b, &n, &err)) die("jpg", &err);
            snprintf(name, sizeof name, "lib_%dch_q%d.jpg", ch, q ? 95 : 40);
            put("image", name, b, n);
            if (ch == 3 && q == 0) put("image", "truncated.jpg", b, n / 2);
            free(b);
        }
        free(img.data);
    }
    png("grey1.png", 10, 3, 0, 1, 0);
    png("grey4_interlaced.png", 9, 9, 0, 4, 1);
    png("grey8_trns.png", 5, 4, 0, 8, 0);
    png("grey16.png", 4, 3, 0, 16, 0);
    png("rgb16_interlaced.png", 5, 5, 2, 16, 1);
    png("rgb8_interlaced.png", 11, 6, 2, 8, 1);
    png("palette2_trns.png", 7, 5, 3, 2, 0);
    png("grey_alpha8.png", 4, 4, 4, 8, 0);
    png("rgba16.png", 3, 2, 6, 16, 0);
    bmp("rgb24.bmp", 5, 3, 24, 0, 0);
    bmp("rgba32_topdown.bmp", 4, 4, 32, 1, 0);
    bmp("rgb16.bmp", 3, 3, 16, 0, 0);
    bmp("pal8.bmp", 6, 2, 8, 0, 0);
    bmp("pal4.bmp", 7, 3, 4, 0, 0);
    bmp("pal1.bmp", 9, 2, 1, 0, 0);
    bmp("pal1_topdown.bmp", 9, 2, 1, 1, 0);
    bmp("rle8.bmp", 6, 3, 8, 0, 1);
    tga("rgb24.tga", 4, 3, 2, 24);
    tga("rgba32_rle.tga", 12, 2, 10, 32);
    tga("grey8.tga", 5, 2, 3, 8);
    tga("cmap8.tga", 4, 4, 1, 8);
    tga("cmap8_rle.tga", 11, 2, 9, 8);
    pnm("grey.pgm", 0, 6, 4, 255);
    pnm("grey16.pgm", 0, 3, 3, 1023);
    pnm("rgb_maxval100.ppm", 1, 4, 2, 100);
    gif("one_frame.gif", 6, 5, 1);
    gif("two_frames.gif", 8, 6, 2);
    /* a PNG header over the fuzzer's 1-megapixel cap */
    {
        buf o = {0};
        static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
        add(&o, sig, 8);
        uint8_t ihdr[13] = {0, 0, 0x30, 0, 0, 0, 0x30, 0, 8, 2, 0, 0, 0}; /* 12288 x 12288 */
        chunk(&o, "IHDR", ihdr, 13);
        chunk(&o, "IEND", NULL, 0);
        putbuf("image", "huge_header.png", &o);
    }
}

/* ------------------------------------------------------------ text */
static void text(const char *name, const char *const *fields, int n)
{
    buf o = {0};
    for (int i = 0; i < n; i++) {
        if (i) u8(&o, 0);
        str(&o, fields[i]);
    }
    putbuf("text", name, &o);
}

static void text_seeds(void)
{
    /* the first byte doubles as flags: 'c' = 0x63 (labels +1 refused, floats, round trip, threads...) */
    const char *a[] = {"cat\ndog\nbird\n", "bilinear", "aibox.arch", "tflite:x.tflite", "aibox.class_names", "a", "b", "c"};
    text("labels_meta.txt", a, 8);
    const char *b[] = {"\xef\xbb\xbfok\r\nscratch \r\n\r\ndent", "NEAREST", "aibox.input.resize", "area",
                       "aibox.input.mean", "x"};
    text("crlf_bom.txt", b, 6);
    const char *c[] = {"h\xc3\xa9llo\n\xe6\x97\xa5\xe6\x9c\xac\n\xff\xfe bad utf8\n", "bilinear_center",
                       "bad key with spaces", "v", "k", "\xc0\xaf"};
    text("utf8.txt", c, 6);
    const char *d[] = {"x", "", "", "", "", ""};
    text("empty_fields.txt", d, 6);
    const char *e[] = {"\n\n\n\n", "12", "aibox.input.std", "1", "aibox.tap.0"};
    text("blank_lines_threads.txt", e, 5);
}

int main(int argc, char **argv)
{
    g_dir = argc > 1 ? argv[1] : "tests/fuzz/corpus";
    mkdir(g_dir, 0755);
    aibox_seeds();
    image_seeds();
    text_seeds();
    fprintf(stderr, "make_seeds: .aibox, image and text seeds in %s\n", g_dir);
    return 0;
}
