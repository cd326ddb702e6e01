/* Refusals in front of stb_image for inputs it mishandles (see
 * stb_guard.h; the reports are in tests/fuzz/README.md).
 *
 * JPEG DHT segments: stb_image 2.27 sums a table's 16 code-length counts
 * without checking the total against the 256 symbols a table holds, then
 * writes that many entries into its fixed arrays (stbi__build_huffman's
 * size[257], the values[256] read after it): a crafted table of up to 4080
 * codes overwrites the decoder's other tables (found by fuzz_image under
 * UBSan). Upstream 2.28 refuses n > 256 ("bad DHT header"); so do we, for
 * every DHT segment stb could read, walking the marker segments as its
 * decoder does: lengths for the segments, and after a scan header the
 * entropy-coded bytes up to the next marker (FF followed by neither 00, FF
 * nor a restart marker).
 *
 * PNG IDAT chunks whose length runs past the file (stb grew its buffer to
 * the declared length first: 1.7 GB for a 170-byte file) are refused by
 * image.c's structure check, after stbi_info (which stops at the first IDAT)
 * and before stb loads anything; not here.
 *
 * PNG chunk types: stb reports an unknown critical chunk with its type's raw
 * bytes in the reason ("\n\n\n\n PNG chunk not known", from a static buffer),
 * which would put control bytes in our one-line messages. The PNG
 * specification allows only letters there, so other bytes are refused first.
 *
 * PNG palettes: stb expands indices through a 256-entry palette on its
 * stack that PLTE fills only up to its own count, so a pixel index past the
 * last entry copies uninitialised stack bytes into the image (valgrind; the
 * same file then decodes differently from run to run). aibox_stb_png_pad_palette
 * gives stb a copy whose PLTE chunks hold 256 entries, the extra ones opaque
 * black, as libpng 1.6 pads its palette. The padding would also lift stb's
 * check that tRNS is no longer than the palette, so the walk below makes it.
 *
 * PGM/PPM headers: stb reads the width, height and maximum value into an int
 * with no overflow check (stbi__pnm_getinteger: signed overflow, found by
 * fuzz_image under UBSan). Numbers beyond INT_MAX are refused first, reading
 * the header as stb does (whitespace, #-comments, digits; 0 past the end). */
#include "image/stb_guard.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

static unsigned be16(const unsigned char *p) { return (unsigned)p[0] << 8 | p[1]; }

/* Checks the tables of a DHT segment whose payload starts at i and is n
 * bytes long, read as stb reads them: table after table while the length
 * left is positive, even past the segment's end (stb reads on, and past the
 * file's end gets zeros). */
static const char *dht_ok(const unsigned char *p, size_t len, size_t i, long n)
{
    while (n > 0) {
        unsigned total = 0;
        for (size_t k = 1; k <= 16; k++) total += i + k < len ? p[i + k] : 0;
        if (total > 256) return "corrupt JPEG: a Huffman table with more than 256 codes";
        i += 17 + total;
        n -= 17 + (long)total;
    }
    return NULL;
}

/* i: just after the SOI marker */
static const char *jpeg(const unsigned char *p, size_t len, size_t i)
{
    while (i + 1 < len) {
        if (p[i] != 0xFF) { /* stb would refuse ("no marker"), or we lost sync: scan on for the next marker */
            i++;
            continue;
        }
        unsigned char m = p[i + 1];
        if (m == 0xFF) { /* fill byte */
            i++;
            continue;
        }
        i += 2;
        if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD9)) continue; /* stuffing, TEM, RSTn, SOI, EOI */
        if (i + 2 > len) break;
        size_t seg = be16(p + i);
        if (seg < 2) break;
        size_t end = i + seg > len ? len : i + seg;
        if (m == 0xC4) {
            const char *why = dht_ok(p, len, i + 2, (long)seg - 2);
            if (why) return why;
        }
        i = end;
        if (m == 0xDA) /* entropy-coded data: up to a marker that is not stuffing or a restart */
            while (i + 1 < len && !(p[i] == 0xFF && p[i + 1] != 0x00 && p[i + 1] != 0xFF &&
                                    !(p[i + 1] >= 0xD0 && p[i + 1] <= 0xD7)))
                i++;
    }
    return NULL;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int is_letter(unsigned char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

/* Walks the chunks as stb does: length, type, data, CRC, up to IEND.
 * Calls visit (when not NULL) on each whole chunk; a non-NULL reason stops it. */
static const char *png_walk(const unsigned char *p, size_t len, aibox_status *code,
                            const char *(*visit)(const unsigned char *chunk, size_t n, void *arg), void *arg)
{
    size_t i = 8;
    while (len - i >= 8) {
        size_t n = be32(p + i), left = len - i - 8;
        const unsigned char *type = p + i + 4;
        if (!is_letter(type[0]) || !is_letter(type[1]) || !is_letter(type[2]) || !is_letter(type[3])) {
            *code = AIBOX_E_FORMAT;
            return "corrupt PNG: a chunk type that is not four letters";
        }
        if (n > left || !memcmp(type, "IEND", 4) || left - n < 4) break; /* a cut: image.c's structure check */
        const char *why = visit ? visit(p + i, n, arg) : NULL;
        if (why) {
            *code = AIBOX_E_FORMAT;
            return why;
        }
        i += 8 + n + 4;
    }
    return NULL;
}

/* What the palette checks need from the chunks seen so far. */
typedef struct {
    int palette_image; /* IHDR colour type 3 */
    size_t entries;    /* of the last PLTE, as stb counts them (0: none yet) */
    size_t short_plte; /* PLTE chunks stb accepts with fewer than 256 entries */
} png_palette;

static const char *palette_visit(const unsigned char *c, size_t n, void *arg)
{
    png_palette *pal = arg;
    if (!memcmp(c + 4, "IHDR", 4) && n >= 13) pal->palette_image = c[8 + 9] == 3;
    if (!memcmp(c + 4, "PLTE", 4) && n <= 768 && n % 3 == 0) { /* stb refuses other lengths */
        pal->entries = n / 3;
        if (pal->palette_image && n < 768) pal->short_plte++;
    }
    /* stb's own check ("bad tRNS len"), which the padding would lift */
    if (!memcmp(c + 4, "tRNS", 4) && pal->palette_image && pal->entries && n > pal->entries)
        return "corrupt PNG: tRNS has more entries than the palette";
    return NULL;
}

static const char *png(const unsigned char *p, size_t len, aibox_status *code)
{
    png_palette pal = {0};
    return png_walk(p, len, code, palette_visit, &pal);
}

int aibox_stb_png_pad_palette(const unsigned char *p, size_t len, unsigned char **copy, size_t *copy_len)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    *copy = NULL, *copy_len = 0;
    png_palette pal = {0};
    aibox_status code;
    if (len < 8 || memcmp(p, sig, 8) || png_walk(p, len, &code, palette_visit, &pal) || !pal.short_plte) return 0;
    size_t cap = len + pal.short_plte * 768;
    unsigned char *out = malloc(cap);
    if (!out) return -1;
    /* the same walk, copying: short PLTE chunks grow to 768 bytes, zero-filled,
     * with their CRC recomputed; everything else as it is */
    size_t i = 8, o = 8;
    int palette_image = 0;
    memcpy(out, p, 8);
    while (len - i >= 8) {
        size_t n = be32(p + i), left = len - i - 8;
        if (n > left || left - n < 4 || !memcmp(p + i + 4, "IEND", 4)) break;
        if (!memcmp(p + i + 4, "IHDR", 4) && n >= 13) palette_image = p[i + 8 + 9] == 3;
        if (palette_image && !memcmp(p + i + 4, "PLTE", 4) && n < 768 && n % 3 == 0) {
            out[o] = 0, out[o + 1] = 0, out[o + 2] = 768 >> 8, out[o + 3] = 768 & 0xFF;
            memcpy(out + o + 4, p + i + 4, 4 + n);
            memset(out + o + 8 + n, 0, 768 - n);
            uint32_t crc = (uint32_t)crc32(0L, out + o + 4, 4 + 768);
            for (int k = 0; k < 4; k++) out[o + 8 + 768 + k] = (unsigned char)(crc >> (24 - 8 * k));
            o += 8 + 768 + 4;
        } else {
            memcpy(out + o, p + i, 8 + n + 4);
            o += 8 + n + 4;
        }
        i += 8 + n + 4;
    }
    memcpy(out + o, p + i, len - i); /* IEND and whatever follows, as given */
    *copy = out, *copy_len = o + (len - i);
    return 1;
}

static const char *pnm(const unsigned char *p, size_t len)
{
    size_t i = 2;
#define NEXT() (i < len ? (int)p[i++] : -1) /* -1: the end (stb then reads zeros, which stop every loop) */
    int c = NEXT();
    for (int k = 0; k < 3; k++) {
        for (;;) {
            while (c == ' ' || (c >= '\t' && c <= '\r')) c = NEXT();
            if (c != '#') break;
            while (c >= 0 && c != '\n' && c != '\r') c = NEXT();
        }
        long long v = 0;
        while (c >= '0' && c <= '9') {
            v = v * 10 + (c - '0');
            if (v > INT_MAX) return "corrupt PGM/PPM: a header number beyond 2^31";
            c = NEXT();
        }
    }
#undef NEXT
    return NULL;
}

const char *aibox_stb_guard(const unsigned char *p, size_t len, aibox_status *code)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len >= 8 && !memcmp(p, sig, 8)) return png(p, len, code);
    *code = AIBOX_E_FORMAT;
    if (len >= 2 && p[0] == 'P' && (p[1] == '5' || p[1] == '6')) return pnm(p, len);
    /* stb reads a JPEG's first marker as any other: fill bytes (FF) may precede SOI */
    size_t i = 0;
    while (i < len && p[i] == 0xFF) i++;
    if (i > 0 && i < len && p[i] == 0xD8) return jpeg(p, len, i + 1);
    return NULL;
}
