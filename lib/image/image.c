/* Image decoding (stb_image), loading from files, copies and channel
 * conversion.
 *
 * stb_image's implementation lives in Debian's libstb.so; we only include
 * its declarations. That build uses the default STBI_MALLOC (malloc), so a
 * buffer stb returns is handed to the caller as is and released with free()
 * by aibox_image_free. stb keeps its failure reason in a thread-local
 * variable (STBI_THREAD_LOCAL, a TLS segment in libstb.so), so decoding is
 * safe from several threads. We never call stb's global setters
 * (stbi_set_flip_vertically_on_load and friends): an application that does
 * would flip our images too, since those flags are process-wide in stb. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb_image.h>

#include "image/image.h"
#include "image/stb_guard.h"

/* Files above this are refused before reading: no image we accept
 * (100 MP by default) needs more, and it bounds what a bad path can cost. */
#define MAX_FILE_BYTES (1ll << 30)

size_t aibox_img_bytes(int width, int height, int channels)
{
    if (width < 1 || height < 1 || width > AIBOX_IMG_MAX_DIM || height > AIBOX_IMG_MAX_DIM) return 0;
    if (channels != 1 && channels != 3 && channels != 4) return 0;
    unsigned long long n = (unsigned long long)width * (unsigned long long)height * (unsigned)channels;
    return n > AIBOX_IMG_MAX_BYTES ? 0 : (size_t)n;
}

aibox_status aibox_img_check(const aibox_image *img, const char *what, aibox_error *err)
{
    if (!img) return aibox_fail(err, AIBOX_E_INVALID, "%s: NULL image", what);
    if (!aibox_img_bytes(img->width, img->height, img->channels))
        return aibox_fail(err, AIBOX_E_INVALID, "%s: invalid image %dx%d with %d channels (want 1, 3 or 4 channels, "
                          "sides 1..%d, at most %llu bytes)", what, img->width, img->height, img->channels,
                          AIBOX_IMG_MAX_DIM, AIBOX_IMG_MAX_BYTES);
    if (!img->data) return aibox_fail(err, AIBOX_E_INVALID, "%s: image has no pixel data", what);
    return AIBOX_OK;
}

void aibox_image_free(aibox_image *img)
{
    if (!img) return;
    free(img->data);
    memset(img, 0, sizeof *img);
}

/* ------------------------------------------------------------ decoding */

typedef enum { FMT_OTHER, FMT_JPEG, FMT_PNG, FMT_GIF, FMT_BMP, FMT_PNM, FMT_HDR, FMT_PSD, FMT_PIC } img_format;

static const unsigned char PNG_SIG[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

/* The magic numbers stb_image tests; TGA has none and is FMT_OTHER. stb
 * takes FF, any number of FF fill bytes, then D8 as a JPEG's start. */
static img_format sniff(const unsigned char *p, size_t len)
{
    if (len >= 2 && p[0] == 0xFF) {
        size_t i = 1;
        while (i < len && p[i] == 0xFF) i++;
        if (i < len && p[i] == 0xD8) return FMT_JPEG;
    }
    if (len >= 8 && memcmp(p, PNG_SIG, 8) == 0) return FMT_PNG;
    if (len >= 4 && memcmp(p, "GIF8", 4) == 0) return FMT_GIF;
    if (len >= 2 && p[0] == 'B' && p[1] == 'M') return FMT_BMP;
    if (len >= 2 && p[0] == 'P' && (p[1] == '5' || p[1] == '6')) return FMT_PNM;
    if (len >= 4 && memcmp(p, "8BPS", 4) == 0) return FMT_PSD;
    if ((len >= 10 && memcmp(p, "#?RADIANCE", 10) == 0) || (len >= 6 && memcmp(p, "#?RGBE", 6) == 0)) return FMT_HDR;
    if (len >= 92 && memcmp(p, "\x53\x80\xF6\x34", 4) == 0 && memcmp(p + 88, "PICT", 4) == 0) return FMT_PIC;
    return FMT_OTHER;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static unsigned le16(const unsigned char *p) { return (unsigned)p[0] | (unsigned)p[1] << 8; }

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* stb_image refuses some huge PNG headers itself ("too large": more than
 * 1 GiB decoded) before telling us their size; reading IHDR here lets the
 * message name our pixel limit instead. Returns 1 and the size for a PNG. */
static int png_header_size(const unsigned char *p, size_t len, uint32_t *w, uint32_t *h)
{
    if (len < 24 || memcmp(p, PNG_SIG, 8) != 0 || memcmp(p + 12, "IHDR", 4) != 0) return 0;
    *w = be32(p + 16);
    *h = be32(p + 20);
    return 1;
}

/* ------------------------------------------------------------ completeness
 *
 * stb_image reads past the end of its input as zeros (get8), or leaves the
 * pixels a short copy did not reach uninitialised (getn), so a cut-off BMP,
 * GIF, TGA or PGM/PPM "decodes" with invented pixels. Before stb decodes,
 * complete() walks the file's own structure, as stb reads it, to where the
 * format says the data ends and requires those bytes to be present:
 *   JPEG     marker segments by their lengths, entropy-coded data up to the
 *            next marker, until EOI (bytes after EOI are ignored, as stb
 *            ignores them: phones' motion photos);
 *   PNG      chunks by their lengths until a whole IEND chunk;
 *   GIF      header, colour tables, extension and image blocks with their
 *            sub-blocks, until the trailer (0x3B);
 *   BMP      the pixel data offset plus the rows stb reads;
 *   PGM/PPM  the header plus width x height x channels samples;
 *   TGA      header, id, colour map, then the pixels: width x height
 *            uncompressed, or RLE packets walked until they cover every pixel.
 * A file that ends early is refused with AIBOX_E_CORRUPT ("truncated ...");
 * a structure stb would misread (a BMP palette stb cannot place, a GIF
 * block of no known kind) with AIBOX_E_FORMAT. Bytes after the end are
 * allowed everywhere. The walks only read, in 64-bit arithmetic, and cost
 * O(file size) at most. */

typedef struct {
    aibox_status code; /* AIBOX_E_CORRUPT: cut short; otherwise the structure is refused */
    int in_header;     /* cut before the image's size was complete (see stb_failed) */
    char why[160];
} verdict;

static int refuse(verdict *v, aibox_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(verdict *v, aibox_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->why, sizeof v->why, fmt, ap);
    va_end(ap);
    v->code = code;
    v->in_header = 0;
    return 0;
}
#define CUT(...) refuse(v, AIBOX_E_CORRUPT, __VA_ARGS__)
#define CUT_HEADER(...) (refuse(v, AIBOX_E_CORRUPT, __VA_ARGS__), v->in_header = 1, 0)
#define BAD(...) refuse(v, AIBOX_E_FORMAT, __VA_ARGS__)

static int jpeg_complete(const unsigned char *p, size_t len, verdict *v)
{
    size_t i = 1;
    while (i < len && p[i] == 0xFF) i++; /* sniff found FF (FF...) D8 */
    i++;
    int sof = 0; /* a frame header (SOF0/1/2, the kinds stb reads) was read */
#define JCUT(...) (sof ? CUT(__VA_ARGS__) : CUT_HEADER(__VA_ARGS__))
    for (;;) {
        /* the next marker (stb skips stray bytes between header segments and after a scan) */
        while (i < len && p[i] != 0xFF) i++;
        while (i < len && p[i] == 0xFF) i++;
        if (i >= len) return JCUT("truncated JPEG (no end-of-image marker)");
        size_t at = i - 1;
        unsigned m = p[i++];
        if (m == 0xD9) return 1;
        if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD8)) continue; /* no length (stb refuses strays itself) */
        if (len - i < 2) return JCUT("truncated JPEG (segment FF%02X at byte %zu: %zu of 4 bytes)", m, at, len - at);
        size_t n = (size_t)p[i] << 8 | p[i + 1];
        if (n < 2) return BAD("malformed JPEG (segment FF%02X at byte %zu has length %zu)", m, at, n);
        if (len - i < n)
            return JCUT("truncated JPEG (segment FF%02X at byte %zu: %zu of %zu bytes)", m, at, len - at, n + 2);
        i += n;
        sof |= m == 0xC0 || m == 0xC1 || m == 0xC2;
        if (m != 0xDA) continue;
        /* entropy-coded data: FF 00 is a data byte, FF D0..D7 a restart
         * marker inside it; any other marker ends the scan */
        for (;;) {
            const unsigned char *ff = i < len ? memchr(p + i, 0xFF, len - i) : NULL;
            if (!ff) return JCUT("truncated JPEG (no end-of-image marker)");
            size_t j = (size_t)(ff - p) + 1;
            while (j < len && p[j] == 0xFF) j++;
            if (j >= len) return JCUT("truncated JPEG (no end-of-image marker)");
            if (p[j] != 0x00 && (p[j] < 0xD0 || p[j] > 0xD7)) {
                i = (size_t)(ff - p);
                break;
            }
            i = j + 1;
        }
    }
}
#undef JCUT

/* A chunk type for messages: its letters, or '?' for other bytes. */
static void chunk_name(const unsigned char *t, char out[5])
{
    for (int k = 0; k < 4; k++)
        out[k] = (t[k] >= 'A' && t[k] <= 'Z') || (t[k] >= 'a' && t[k] <= 'z') ? (char)t[k] : '?';
    out[4] = 0;
}

/* Chunks by their lengths. stbi_info reads IHDR, and for a palette image
 * on to the first IDAT: a cut before that is a cut in the header. */
static int png_complete(const unsigned char *p, size_t len, verdict *v)
{
    size_t i = 8;
    int header = 1;
    for (;;) {
        size_t left = len - i;
        if (left >= 8 && be32(p + i) > 0x7FFFFFFFu)
            return BAD("malformed PNG (chunk at byte %zu has length %u)", i, (unsigned)be32(p + i));
        if (left < 8 || left < 12ull + be32(p + i)) { /* length, type, data, CRC */
            if (left == 0) {
                CUT(i == 8 ? "truncated PNG (no IHDR chunk)" : "truncated PNG (no IEND chunk)");
            } else if (left < 8) {
                CUT("truncated PNG (chunk at byte %zu: %zu of at least 12 bytes)", i, left);
            } else {
                char type[5];
                chunk_name(p + i + 4, type);
                CUT("truncated PNG (chunk %s at byte %zu: %zu of %llu bytes)", type, i, left, 12ull + be32(p + i));
            }
            v->in_header = header;
            return 0;
        }
        if (memcmp(p + i + 4, "IEND", 4) == 0) return 1;
        if (i == 8) header = be32(p + i) >= 13 && p[i + 17] == 3; /* IHDR's colour type */
        if (memcmp(p + i + 4, "IDAT", 4) == 0) header = 0;
        i += 12 + (size_t)be32(p + i);
    }
}

/* A chain of GIF sub-blocks (a size byte, then that many bytes) ending
 * with an empty one; *at moves past it. */
static int gif_sub_blocks(const unsigned char *p, size_t len, size_t *at, const char *what, verdict *v)
{
    size_t i = *at;
    for (;;) {
        if (i >= len) return CUT("truncated GIF (%s at byte %zu: no end of its sub-blocks)", what, *at);
        size_t n = p[i];
        if (n == 0) break;
        if (len - i - 1 < n) return CUT("truncated GIF (%s sub-block at byte %zu: %zu of %zu bytes)", what, i, len - i - 1, n);
        i += 1 + n;
    }
    *at = i + 1;
    return 1;
}

static int gif_complete(const unsigned char *p, size_t len, verdict *v)
{
    if (len < 6 ? memcmp(p, "GIF89a", len) && memcmp(p, "GIF87a", len) : memcmp(p, "GIF89a", 6) && memcmp(p, "GIF87a", 6))
        return BAD("not a GIF stb reads (GIF87a or GIF89a)");
    if (len < 13) return CUT_HEADER("truncated GIF (header: %zu of 13 bytes)", len);
    size_t i = 13;
    if (p[10] & 0x80) {
        size_t n = (size_t)3 << ((p[10] & 7) + 1);
        if (len - i < n) return CUT("truncated GIF (global colour table: %zu of %zu bytes)", len - i, n);
        i += n;
    }
    for (;;) {
        if (i >= len) return CUT("truncated GIF (no trailer)");
        size_t at = i;
        switch (p[i]) {
        case 0x3B: return 1;
        case 0x2C: /* image descriptor, local colour table, LZW code size, data */
            if (len - i < 10) return CUT("truncated GIF (image descriptor at byte %zu: %zu of 10 bytes)", at, len - i);
            if (p[i + 9] & 0x80) {
                size_t n = (size_t)3 << ((p[i + 9] & 7) + 1);
                i += 10;
                if (len - i < n) return CUT("truncated GIF (local colour table at byte %zu: %zu of %zu bytes)", i, len - i, n);
                i += n;
            } else {
                i += 10;
            }
            if (i >= len) return CUT("truncated GIF (image data at byte %zu: no LZW code size)", i);
            i++;
            if (!gif_sub_blocks(p, len, &i, "image data", v)) return 0;
            break;
        case 0x21: /* extension: label, then sub-blocks */
            if (len - i < 3) return CUT("truncated GIF (extension at byte %zu: %zu of 3 bytes)", at, len - i);
            i += 2;
            if (p[i - 1] == 0xF9 && p[i] != 4) {
                /* stb reads a graphic control extension whose block is not 4
                 * bytes long as that block alone, with no terminator */
                size_t n = p[i];
                if (len - i - 1 < n) return CUT("truncated GIF (extension at byte %zu: %zu of %zu bytes)", at, len - at, n + 3);
                i += 1 + n;
                break;
            }
            if (!gif_sub_blocks(p, len, &i, "extension", v)) return 0;
            break;
        default: return BAD("malformed GIF (block 0x%02X at byte %zu is of no known kind)", p[i], at);
        }
    }
}

/* stb reads BMPs with 12-, 40-, 56-, 108- and 124-byte headers, BI_RGB or
 * BI_BITFIELDS (not RLE), 1/4/8 bits with a palette or 16/24/32 bits. Rows
 * are padded to 4 bytes; the last row's padding is not required: stb skips
 * it without reading, and some writers leave it out (image-rs and Chromium
 * accept such files too). */
static int bmp_complete(const unsigned char *p, size_t len, verdict *v)
{
    if (len < 18) return CUT_HEADER("truncated BMP (header: %zu of 18 bytes)", len);
    uint32_t off = le32(p + 10), hsz = le32(p + 14), comp = 0;
    if (hsz != 12 && hsz != 40 && hsz != 56 && hsz != 108 && hsz != 124)
        return BAD("unsupported BMP (%u-byte header)", (unsigned)hsz);
    if (len < 14 + hsz) return CUT_HEADER("truncated BMP (header: %zu of %u bytes)", len, 14 + (unsigned)hsz);
    long long w, h;
    unsigned bpp;
    if (hsz == 12)
        w = le16(p + 18), h = le16(p + 20), bpp = le16(p + 24);
    else
        w = (int32_t)le32(p + 18), h = (int32_t)le32(p + 22), bpp = le16(p + 28), comp = le32(p + 30);
    if (comp != 0 && comp != 3) return BAD("unsupported BMP (compression %u)", (unsigned)comp);
    if (bpp != 1 && bpp != 4 && bpp != 8 && bpp != 16 && bpp != 24 && bpp != 32)
        return BAD("unsupported BMP (%u bits per pixel)", bpp);
    /* where stb stands after the header: BI_BITFIELDS masks follow a 40- or
     * 56-byte header (its extra_read) */
    size_t head = 14 + hsz + ((hsz == 40 || hsz == 56) && comp == 3 ? 12 : 0);
    if (len < head) return CUT_HEADER("truncated BMP (header: %zu of %zu bytes)", len, head);
    if (h < 0) h = -h;
    if (w < 1 || h < 1 || w > AIBOX_IMG_MAX_DIM || h > AIBOX_IMG_MAX_DIM)
        return BAD("malformed BMP (%lldx%lld pixels)", w, h);
    if (off > INT32_MAX) return BAD("malformed BMP (pixel data offset %u)", (unsigned)off);
    long long entries = 0;
    if (bpp < 16) {
        /* stb derives the palette's size from the offset (its formula,
         * which for 12-byte headers counts 4 entries fewer) and then skips
         * to the offset; with no entry it would read pixels through an
         * uninitialised palette */
        long long room = (long long)off - (long long)head;
        entries = hsz == 12 ? (room >= 12 ? (room - 12) / 3 : 0) : (room >= 0 ? room / 4 : 0);
        if (entries < 1 || entries > 256)
            return BAD("malformed BMP (pixel data offset %u leaves room for %lld palette entries)", (unsigned)off, entries);
    } else if (off != head) { /* stb requires the pixels right after the header */
        return BAD("malformed BMP (pixel data offset %u, header ends at byte %zu)", (unsigned)off, head);
    }
    unsigned long long row = bpp == 1 ? ((unsigned long long)w + 7) / 8
                           : bpp == 4 ? ((unsigned long long)w + 1) / 2
                                      : (unsigned long long)w * (bpp / 8);
    unsigned long long stride = (row + 3) / 4 * 4;
    unsigned long long need = stride * (unsigned long long)(h - 1) + row;
    if (len < off) return CUT("truncated BMP (header and palette: %zu of %u bytes)", len, (unsigned)off);
    if (len - off < need) return CUT("truncated BMP (pixel data: %zu of %llu bytes)", len - off, need);
    if (bpp < 16 && entries < 1ll << bpp) {
        /* stb looks indices up in a 256-entry table filled only as far as
         * the palette goes: a larger index would give uninitialised memory */
        for (long long y = 0; y < h; y++) {
            const unsigned char *r = p + off + (size_t)y * (size_t)stride;
            for (long long x = 0; x < w; x++) {
                unsigned idx = bpp == 8 ? r[x] : bpp == 4 ? (unsigned)(r[x / 2] >> (x % 2 ? 0 : 4)) & 15u
                                                          : (unsigned)(r[x / 8] >> (7 - x % 8)) & 1u;
                if (idx >= entries)
                    return BAD("malformed BMP (pixel index %u beyond its %lld-entry palette)", idx, entries);
            }
        }
    }
    return 1;
}

/* Binary PGM/PPM header, read as stb reads it: "P5" or "P6", then width,
 * height and maximum value, each after whitespace and #-comments, then one
 * byte, then the samples (big-endian when maxval > 255). */
typedef struct {
    long long w, h, maxv;
    int channels;
    size_t data;
} pnm_header;

/* 1: parsed; 0: malformed; -1: the file ends inside the header. */
static int pnm_parse(const unsigned char *p, size_t len, pnm_header *hd)
{
    size_t i = 2;
    long long val[3];
    for (int k = 0; k < 3; k++) {
        for (;;) {
            while (i < len && (p[i] == ' ' || (p[i] >= '\t' && p[i] <= '\r'))) i++;
            if (i >= len || p[i] != '#') break;
            while (i < len && p[i] != '\n' && p[i] != '\r') i++;
        }
        if (i >= len) return -1;
        if (p[i] < '0' || p[i] > '9') return 0;
        val[k] = 0;
        while (i < len && p[i] >= '0' && p[i] <= '9') {
            val[k] = val[k] * 10 + (p[i++] - '0');
            if (val[k] > INT_MAX) return 0; /* stb's int would overflow: not a header we trust */
        }
    }
    if (i >= len) return -1;
    hd->w = val[0], hd->h = val[1], hd->maxv = val[2];
    hd->channels = p[1] == '6' ? 3 : 1;
    hd->data = i + 1;
    return 1;
}

/* stb copies the samples with one read whose shortfall it ignores (the
 * pixels would be uninitialised memory). */
static int pnm_complete(const unsigned char *p, size_t len, verdict *v)
{
    pnm_header hd;
    int r = pnm_parse(p, len, &hd);
    if (r < 0) return CUT_HEADER("truncated PGM/PPM (header)");
    if (r == 0 || hd.w > AIBOX_IMG_MAX_DIM || hd.h > AIBOX_IMG_MAX_DIM) return BAD("malformed PGM/PPM header");
    unsigned long long need = (unsigned long long)hd.w * (unsigned long long)hd.h * (unsigned)hd.channels *
                              (hd.maxv > 255 ? 2u : 1u);
    if (len - hd.data < need)
        return CUT("truncated PGM/PPM (%zu of %llu sample bytes)", len - hd.data, need);
    return 1;
}

/* The TGAs stb reads (stbi__tga_test): colour-mapped (type 1, RLE 9) with
 * 8- or 16-bit indices into 8/15/16/24/32-bit entries, or true colour and
 * grey (types 2 and 3, RLE 10 and 11) of 8/15/16/24/32 bits. A pixel or
 * index takes (bits + 7) / 8 bytes, as does a colour map entry. With fewer
 * than 3 bytes there is nothing to tell a TGA by. */
static int tga_complete(const unsigned char *p, size_t len, verdict *v)
{
    unsigned mapped = len > 1 ? p[1] : 0, type = len > 2 ? p[2] : 0;
    if (len < 3 || mapped > 1 || (mapped ? type != 1 && type != 9 : type != 2 && type != 3 && type != 10 && type != 11))
        return BAD("not a TGA stb reads");
    unsigned entry_bits = len > 7 ? p[7] : 8, bits = len > 16 ? p[16] : 8;
    if (mapped && entry_bits != 8 && entry_bits != 15 && entry_bits != 16 && entry_bits != 24 && entry_bits != 32)
        return BAD("not a TGA stb reads (%u-bit colour map entries)", entry_bits);
    if (mapped ? bits != 8 && bits != 16 : bits != 8 && bits != 15 && bits != 16 && bits != 24 && bits != 32)
        return BAD("not a TGA stb reads (%u bits per pixel)", bits);
    if (len < 18) return CUT_HEADER("truncated TGA (header: %zu of 18 bytes)", len);
    unsigned first = le16(p + 3), entries = le16(p + 5), w = le16(p + 12), h = le16(p + 14);
    if (w < 1 || h < 1) return BAD("malformed TGA (%ux%u pixels)", w, h);
    if (mapped && entries == 0) return BAD("malformed TGA (empty colour map)");
    /* stb skips `first` bytes before the colour map where the format means
     * `first` entries missing from its start: it would shift the colours */
    if (mapped && first != 0)
        return refuse(v, AIBOX_E_UNSUPPORTED, "TGA colour maps starting at entry %u are not supported", first);
    unsigned long long start = 18ull + p[0] + (mapped ? (unsigned long long)entries * ((entry_bits + 7) / 8) : 0);
    if (len < start) return CUT("truncated TGA (header and colour map: %zu of %llu bytes)", len, start);
    unsigned long long px = (unsigned long long)w * h, size = (bits + 7) / 8;
    if (type < 8) {
        if (len - start < px * size) return CUT("truncated TGA (pixel data: %llu of %llu bytes)", len - start, px * size);
        return 1;
    }
    /* RLE packets: a count byte (high bit: one pixel repeated), then one
     * pixel or count pixels; stb stops reading when every pixel is set */
    size_t i = (size_t)start;
    for (unsigned long long done = 0; done < px;) {
        if (i >= len) return CUT("truncated TGA (RLE data covers %llu of %llu pixels)", done, px);
        unsigned c = p[i++];
        unsigned long long n = 1 + (c & 127u);
        if (n > px - done) n = px - done;
        unsigned long long bytes = c & 128u ? size : n * size;
        if (len - i < bytes) return CUT("truncated TGA (RLE data covers %llu of %llu pixels)", done, px);
        i += (size_t)bytes;
        done += n;
    }
    return 1;
}

/* 1 when the file holds every byte its structure promises; otherwise 0 and
 * the reason in v. TGA (no magic) stands for every other format here: stb
 * reads no other without a magic number. */
static int complete(img_format fmt, const unsigned char *p, size_t len, verdict *v)
{
    switch (fmt) {
    case FMT_JPEG: return jpeg_complete(p, len, v);
    case FMT_PNG: return png_complete(p, len, v);
    case FMT_GIF: return gif_complete(p, len, v);
    case FMT_BMP: return bmp_complete(p, len, v);
    case FMT_PNM: return pnm_complete(p, len, v);
    case FMT_OTHER: return tga_complete(p, len, v);
    default: return 1; /* HDR, PSD, PIC: refused before this */
    }
}
#undef CUT
#undef CUT_HEADER
#undef BAD

static aibox_status stb_failed(aibox_error *err, const char *name, img_format fmt, const unsigned char *p, size_t len,
                               int header_only)
{
    /* Read at once: the text may sit in a static buffer of stb's (unknown
     * PNG chunk names) that another thread's failure can overwrite. */
    const char *why = stbi_failure_reason();
    if (!why || !*why) why = "unknown error";
    if (strcmp(why, "outofmem") == 0) return aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory while decoding", name);
    if (strcmp(why, "too large") == 0)
        return aibox_fail(err, AIBOX_E_UNSUPPORTED, "%s: image too large to decode (stb_image: too large)", name);
    /* stb's reason for a file cut short ("expected marker", "bad offset",
     * or one left over from probing another format) rarely says so. When
     * stb failed on the header alone and that header is all there (a PNG
     * claiming 0 pixels, with nothing after it), stb's reason stands. */
    verdict v;
    if (!complete(fmt, p, len, &v) && v.code == AIBOX_E_CORRUPT && (v.in_header || !header_only))
        return aibox_fail(err, v.code, "%s: %s", name, v.why);
    return aibox_fail(err, AIBOX_E_FORMAT, "%s: cannot decode: %s", name, why);
}

/* What stb does not check in a PGM/PPM: it ignores maxval (rescaled after
 * decoding) and reads 16-bit samples in host byte order (swapped after). */
static aibox_status pnm_check(const unsigned char *p, size_t len, int w, int h, pnm_header *hd, const char *name,
                              aibox_error *err)
{
    if (pnm_parse(p, len, hd) != 1 || hd->w != w || hd->h != h)
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: malformed PGM/PPM header", name);
    if (hd->maxv < 1) return aibox_fail(err, AIBOX_E_FORMAT, "%s: PGM/PPM maximum value is 0", name);
    return AIBOX_OK;
}

/* A sample in 0..maxv to 0..255, rounded to nearest: for 16-bit PNGs
 * round(v * 255 / 65535), where stb's own conversion (stbi_load on a
 * 16-bit file) keeps the high byte, up to 1 lower. Out-of-range samples
 * (above a PNM's maxval) saturate. */
static inline uint8_t rescale(uint32_t v, uint32_t maxv)
{
    return v >= maxv ? 255 : (uint8_t)((510u * v + maxv) / (2u * maxv));
}

aibox_status aibox_image_decode(aibox_image *img, const void *bytes, size_t len, const char *name,
                                long long max_pixels, aibox_error *err)
{
    if (!img) return aibox_fail(err, AIBOX_E_INVALID, "image decode: NULL output image");
    memset(img, 0, sizeof *img);
    if (!name) name = "image";
    if (!bytes && len) return aibox_fail(err, AIBOX_E_INVALID, "%s: NULL data", name);
    if (len == 0) return aibox_fail(err, AIBOX_E_FORMAT, "%s: empty file", name);
    if (len > INT_MAX)
        return aibox_fail(err, AIBOX_E_UNSUPPORTED, "%s: %zu bytes is more than stb_image can read (2 GiB)", name, len);
    const unsigned char *p = bytes;
    long long cap = max_pixels > 0 ? max_pixels : AIBOX_IMAGE_MAX_PIXELS_DEFAULT;
    img_format fmt = sniff(p, len);
    /* Formats stb reads beyond the documented list: tone-mapped HDR, PSD and
     * Softimage PIC are refused rather than half supported. */
    if (fmt == FMT_HDR || fmt == FMT_PSD || fmt == FMT_PIC)
        return aibox_fail(err, AIBOX_E_UNSUPPORTED, "%s: %s images are not supported (JPEG, PNG, BMP, PGM/PPM, TGA and GIF are)",
                          name, fmt == FMT_HDR ? "Radiance HDR" : fmt == FMT_PSD ? "Photoshop" : "Softimage PIC");

    aibox_status unsafe_code;
    const char *unsafe = aibox_stb_guard(p, len, &unsafe_code); /* inputs stb_image mishandles (stb_guard.c) */
    if (unsafe) return aibox_fail(err, unsafe_code, "%s: %s", name, unsafe);

    /* Header first: refuse what is too large before any pixel memory exists. */
    int w, h, n;
    if (!stbi_info_from_memory(p, (int)len, &w, &h, &n)) {
        uint32_t pw, ph;
        if (png_header_size(p, len, &pw, &ph) && (unsigned long long)pw * ph > (unsigned long long)cap)
            return aibox_fail(err, AIBOX_E_UNSUPPORTED, "%s: %ux%u pixels exceeds the %lld-pixel limit", name,
                              (unsigned)pw, (unsigned)ph, cap);
        return stb_failed(err, name, fmt, p, len, 1);
    }
    /* stb's BMP header reader gives a top-down BMP's height negative, as
     * stored; its loader takes the absolute value */
    if (fmt == FMT_BMP && h < 0 && h != INT_MIN) h = -h;
    if (w <= 0 || h <= 0) {
        verdict v; /* a header cut short reads as zeros */
        if (!complete(fmt, p, len, &v) && v.code == AIBOX_E_CORRUPT && v.in_header)
            return aibox_fail(err, v.code, "%s: %s", name, v.why);
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: header says %dx%d pixels", name, w, h);
    }
    if ((long long)w * h > cap) /* ints below 2^31: the product fits in long long */
        return aibox_fail(err, AIBOX_E_UNSUPPORTED, "%s: %dx%d pixels exceeds the %lld-pixel limit", name, w, h, cap);
    /* Every byte the structure promises, before stb can invent any. */
    verdict v;
    if (!complete(fmt, p, len, &v)) return aibox_fail(err, v.code, "%s: %s", name, v.why);
    pnm_header pnm = {0};
    aibox_status st;
    if (fmt == FMT_PNM && (st = pnm_check(p, len, w, h, &pnm, name, err))) return st;

    /* stb decodes a rewritten copy where the file needs one (see
     * aibox_stb_rewrite), in the 8-bit and the 16-bit path alike */
    unsigned char *fixed = NULL;
    size_t fixed_len = 0;
    if (aibox_stb_rewrite(p, len, &fixed, &fixed_len) < 0)
        return aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory copying the file", name);
    if (fixed && fixed_len > INT_MAX) {
        free(fixed);
        return aibox_fail(err, AIBOX_E_UNSUPPORTED, "%s: %zu bytes is more than stb_image can read (2 GiB)", name, len);
    }
    const unsigned char *src = fixed ? fixed : p;
    int src_len = fixed ? (int)fixed_len : (int)len;
    int x, y, c;
    uint8_t *px;
    if (stbi_is_16_bit_from_memory(src, src_len)) { /* 16-bit PNG, PGM/PPM with maxval > 255 */
        uint16_t *wide = stbi_load_16_from_memory(src, src_len, &x, &y, &c, 0);
        free(fixed);
        if (!wide) return stb_failed(err, name, fmt, p, len, 0);
        /* To 8 bits in place: byte i is written after sample i (bytes 2i,
         * 2i+1) is read, and later samples lie beyond it. */
        size_t count = (size_t)x * (size_t)y * (size_t)c;
        px = (uint8_t *)wide;
        if (fmt == FMT_PNM) /* stb copied the file's big-endian bytes as they are */
            for (size_t i = 0; i < count; i++) px[i] = rescale((uint32_t)px[2 * i] << 8 | px[2 * i + 1], (uint32_t)pnm.maxv);
        else
            for (size_t i = 0; i < count; i++) px[i] = rescale(wide[i], 65535u);
        uint8_t *shrunk = realloc(px, count);
        if (shrunk) px = shrunk;
    } else {
        /* GIF: the first frame, as RGBA. req_comp 0 keeps the file's channels. */
        px = stbi_load_from_memory(src, src_len, &x, &y, &c, 0);
        free(fixed);
        if (!px) return stb_failed(err, name, fmt, p, len, 0);
        if (fmt == FMT_PNM && pnm.maxv != 255) {
            size_t count = (size_t)x * (size_t)y * (size_t)c;
            for (size_t i = 0; i < count; i++) px[i] = rescale(px[i], (uint32_t)pnm.maxv);
        }
    }
    if ((long long)x * y > cap || x > AIBOX_IMG_MAX_DIM || y > AIBOX_IMG_MAX_DIM) { /* header and data disagree */
        free(px);
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: decoded %dx%d pixels, header said %dx%d", name, x, y, w, h);
    }
    if (c == 2) {
        /* Grey + alpha has no aibox layout: widen to RGBA, which loses nothing. */
        size_t np = (size_t)x * (size_t)y;
        uint8_t *rgba = aibox_img_bytes(x, y, 4) ? malloc(np * 4) : NULL;
        if (!rgba) {
            free(px);
            return aibox_fail(err, aibox_img_bytes(x, y, 4) ? AIBOX_E_NOMEM : AIBOX_E_UNSUPPORTED,
                              "%s: cannot widen %dx%d grey+alpha to RGBA", name, x, y);
        }
        for (size_t i = 0; i < np; i++) {
            rgba[4 * i] = rgba[4 * i + 1] = rgba[4 * i + 2] = px[2 * i];
            rgba[4 * i + 3] = px[2 * i + 1];
        }
        free(px);
        px = rgba;
        c = 4;
    }
    if (!aibox_img_bytes(x, y, c)) {
        free(px);
        return aibox_fail(err, AIBOX_E_UNSUPPORTED, "%s: %dx%d pixels with %d channels is beyond what libaibox handles",
                          name, x, y, c);
    }
    img->width = x;
    img->height = y;
    img->channels = c;
    img->data = px;
    return AIBOX_OK;
}

/* ------------------------------------------------------------ files */

aibox_status aibox_image_load(aibox_image *img, const char *path, long long max_pixels, aibox_error *err)
{
    if (!img) return aibox_fail(err, AIBOX_E_INVALID, "image load: NULL output image");
    memset(img, 0, sizeof *img);
    unsigned char *buf = NULL;
    size_t size = 0;
    /* the library's one reader: FIFOs refused without waiting, the size capped before reading */
    aibox_status st = aibox_read_file(path, MAX_FILE_BYTES, &buf, &size, err);
    if (!st) st = aibox_image_decode(img, buf, size, path, max_pixels, err); /* 0 bytes: "empty file" */
    free(buf);
    return st;
}

/* ------------------------------------------------------------ copy, convert */

static aibox_status check_dst(aibox_image *dst, const aibox_image *src, const char *what, aibox_error *err)
{
    if (!dst) return aibox_fail(err, AIBOX_E_INVALID, "%s: NULL output image", what);
    if (dst == src) return aibox_fail(err, AIBOX_E_INVALID, "%s: output and input are the same image", what);
    return AIBOX_OK;
}

aibox_status aibox_image_copy(aibox_image *dst, const aibox_image *src, aibox_error *err)
{
    aibox_status st = check_dst(dst, src, "image copy", err);
    if (st) return st;
    memset(dst, 0, sizeof *dst);
    if ((st = aibox_img_check(src, "image copy", err))) return st;
    size_t bytes = aibox_img_bytes(src->width, src->height, src->channels);
    uint8_t *p = malloc(bytes);
    if (!p) return aibox_fail(err, AIBOX_E_NOMEM, "image copy: out of memory (%zu bytes)", bytes);
    memcpy(p, src->data, bytes);
    *dst = *src;
    dst->data = p;
    return AIBOX_OK;
}

/* ITU-R BT.601 luma, round(0.299 R + 0.587 G + 0.114 B), in integers: the
 * weights are exact in thousandths, so this is the exactly rounded value
 * (halves up) and grey pixels (R = G = B) come back unchanged. */
static inline uint8_t luma(const uint8_t *p)
{
    return (uint8_t)((299u * p[0] + 587u * p[1] + 114u * p[2] + 500u) / 1000u);
}

aibox_status aibox_image_convert(aibox_image *dst, const aibox_image *src, int channels, aibox_error *err)
{
    aibox_status st = check_dst(dst, src, "image convert", err);
    if (st) return st;
    memset(dst, 0, sizeof *dst);
    if ((st = aibox_img_check(src, "image convert", err))) return st;
    if (channels != 1 && channels != 3 && channels != 4)
        return aibox_fail(err, AIBOX_E_INVALID, "image convert: %d channels requested (want 1, 3 or 4)", channels);
    size_t bytes = aibox_img_bytes(src->width, src->height, channels);
    if (!bytes)
        return aibox_fail(err, AIBOX_E_INVALID, "image convert: %dx%d with %d channels exceeds %llu bytes",
                          src->width, src->height, channels, AIBOX_IMG_MAX_BYTES);
    uint8_t *out = malloc(bytes);
    if (!out) return aibox_fail(err, AIBOX_E_NOMEM, "image convert: out of memory (%zu bytes)", bytes);
    size_t np = (size_t)src->width * (size_t)src->height;
    const uint8_t *in = src->data;
    const int ci = src->channels, co = channels;
    if (ci == co) {
        memcpy(out, in, bytes);
    } else if (ci == 1) { /* grey replicated; opaque alpha */
        for (size_t i = 0; i < np; i++) {
            uint8_t *o = out + i * (size_t)co;
            o[0] = o[1] = o[2] = in[i];
            if (co == 4) o[3] = 255;
        }
    } else if (co == 1) { /* luma of RGB; any alpha is dropped, not composited */
        for (size_t i = 0; i < np; i++) out[i] = luma(in + i * (size_t)ci);
    } else { /* RGB <-> RGBA: alpha set opaque or dropped */
        for (size_t i = 0; i < np; i++) {
            const uint8_t *s = in + i * (size_t)ci;
            uint8_t *o = out + i * (size_t)co;
            o[0] = s[0], o[1] = s[1], o[2] = s[2];
            if (co == 4) o[3] = 255;
        }
    }
    dst->width = src->width;
    dst->height = src->height;
    dst->channels = channels;
    dst->data = out;
    return AIBOX_OK;
}
