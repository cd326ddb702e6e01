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
 * same file then decodes differently from run to run). aibox_stb_rewrite
 * gives stb a copy whose PLTE chunks hold 256 entries, the extra ones opaque
 * black, as libpng 1.6 pads its palette. The padding would also lift stb's
 * check that tRNS is no longer than the palette, so the walk below makes it.
 *
 * PNG IDAT chunks of length 0: stb appends each IDAT's bytes to a buffer it
 * allocates at the first non-empty one, so an empty IDAT before it computes
 * NULL + 0 (undefined behaviour, found by fuzz_image under UBSan). They carry
 * no data; aibox_stb_rewrite's copy leaves them out, and the file decodes as
 * it would with them.
 *
 * JPEG tables used before they exist: stb mallocs its decoder state without
 * clearing it, so a scan whose Huffman table, or a component whose
 * quantisation table, was never defined decodes from uninitialised heap, and
 * so does a component that no scan codes (its plane is never written):
 * valgrind on the fuzzers' corpus, 109 files. Huffman tables 0 and 1 get the
 * standard tables of T.81 Annex K.3 (aibox_stb_rewrite), as libjpeg supplies
 * them, so motion-JPEG frames saved without DHT decode correctly; tables 2
 * and 3 undefined, an undefined quantisation table, or an uncoded component
 * are refused. The walk checks them in file order, as stb meets them: a
 * baseline scan reads its quantisation table while decoding, a progressive
 * file at the end.
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

/* What the walk learns about a JPEG's tables, in file order, as stb's
 * decoder would meet them. */
typedef struct {
    unsigned dq;         /* quantisation tables defined so far (bit t) */
    unsigned huff[2];    /* Huffman tables defined so far: [0] DC, [1] AC (bit id) */
    unsigned need_std[2]; /* tables 0/1 a scan uses before any DHT defines them */
    int frame;           /* a frame header (SOF0/1/2) was read */
    int progressive, ncomp;
    unsigned char id[4], tq[4];
    int coded[4];        /* baseline: in some scan; progressive: in a first DC scan */
    int done;            /* EOI after the frame: stb reads no further */
} jpeg_tables;

/* Checks the tables of a DHT segment whose payload starts at i and is n
 * bytes long, read as stb reads them: table after table while the length
 * left is positive, even past the segment's end (stb reads on, and past the
 * file's end gets zeros). Records the tables it defines. */
static const char *dht_ok(const unsigned char *p, size_t len, size_t i, long n, jpeg_tables *t)
{
    while (n > 0) {
        unsigned q = i < len ? p[i] : 0, total = 0;
        for (size_t k = 1; k <= 16; k++) total += i + k < len ? p[i + k] : 0;
        if (total > 256) return "corrupt JPEG: a Huffman table with more than 256 codes";
        if ((q >> 4) <= 1 && (q & 15) <= 3) t->huff[q >> 4] |= 1u << (q & 15); /* else stb refuses */
        i += 17 + total;
        n -= 17 + (long)total;
    }
    return NULL;
}

static void dqt_seen(const unsigned char *p, size_t len, size_t i, long n, jpeg_tables *t)
{
    while (n > 0) {
        unsigned q = i < len ? p[i] : 0;
        if ((q >> 4) > 1 || (q & 15) > 3) return; /* stb refuses the file */
        t->dq |= 1u << (q & 15);
        long size = 1 + 64 * ((q >> 4) ? 2 : 1);
        i += (size_t)size, n -= size;
    }
}

static void frame_seen(const unsigned char *p, size_t len, size_t i, size_t seg, unsigned char m, jpeg_tables *t)
{
    if (seg < 8 || i + 8 > len) return;
    int nc = p[i + 7];
    if (nc != 1 && nc != 3 && nc != 4) return; /* stb refuses other counts */
    if (seg < 8 + 3 * (size_t)nc || i + 8 + 3 * (size_t)nc > len) return;
    t->frame = 1, t->progressive = m == 0xC2, t->ncomp = nc;
    for (int c = 0; c < nc; c++) t->id[c] = p[i + 8 + 3 * c], t->tq[c] = p[i + 8 + 3 * c + 2] & 15;
}

/* One table a scan reads: defined by then, or one of the two standard
 * tables a decoder supplies (motion-JPEG frames carry none), or refused. */
static const char *uses(jpeg_tables *t, int cls, unsigned id)
{
    if (t->huff[cls] >> id & 1) return NULL;
    if (id > 1) return "corrupt JPEG: a scan uses a Huffman table that is never defined";
    t->need_std[cls] |= 1u << id;
    return NULL;
}

static const char *scan_seen(const unsigned char *p, size_t len, size_t i, size_t seg, jpeg_tables *t)
{
    if (!t->frame || seg < 3 || i + 3 > len) return NULL;
    int ns = p[i + 2];
    if (ns < 1 || ns > 4 || seg != 6 + 2 * (size_t)ns || i + seg > len) return NULL; /* stb refuses */
    unsigned ss = p[i + 3 + 2 * ns], ah = p[i + 5 + 2 * ns] >> 4;
    for (int k = 0; k < ns; k++) {
        int c = 0;
        while (c < t->ncomp && t->id[c] != p[i + 3 + 2 * k]) c++;
        if (c == t->ncomp) return NULL; /* stb refuses */
        unsigned td = p[i + 4 + 2 * k] >> 4, ta = p[i + 4 + 2 * k] & 15;
        if (td > 3 || ta > 3) return NULL; /* stb refuses */
        const char *why = NULL;
        if (!t->progressive) { /* both tables, and the quantisation table now */
            if (!(t->dq >> t->tq[c] & 1)) return "corrupt JPEG: a scan's quantisation table is not defined before it";
            if ((why = uses(t, 0, td)) || (why = uses(t, 1, ta))) return why;
            t->coded[c] = 1;
        } else if (ss == 0 && ah == 0) { /* first DC scan: it also clears the block */
            if ((why = uses(t, 0, td))) return why;
            t->coded[c] = 1;
        } else if (ss > 0 && (why = uses(t, 1, ta))) {
            return why;
        }
    }
    return NULL;
}

/* Where stb would decode from memory nothing wrote: a component no scan
 * codes, or (progressive) a quantisation table still undefined at the end. */
static const char *frame_complete(const jpeg_tables *t)
{
    for (int c = 0; t->frame && c < t->ncomp; c++) {
        if (!t->coded[c]) return "corrupt JPEG: a colour component that no scan codes";
        if (t->progressive && !(t->dq >> t->tq[c] & 1)) return "corrupt JPEG: a quantisation table that is never defined";
    }
    return NULL;
}

/* i: just after the SOI marker */
static const char *jpeg_walk(const unsigned char *p, size_t len, size_t i, jpeg_tables *t)
{
    while (i + 1 < len && !t->done) {
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
        if (m == 0xD9 && t->frame) t->done = 1;
        if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD9)) continue; /* stuffing, TEM, RSTn, SOI, EOI */
        if (i + 2 > len) break;
        size_t seg = be16(p + i);
        if (seg < 2) break;
        size_t end = i + seg > len ? len : i + seg;
        const char *why = NULL;
        if (m == 0xC4) why = dht_ok(p, len, i + 2, (long)seg - 2, t);
        if (m == 0xDB) dqt_seen(p, len, i + 2, (long)seg - 2, t);
        if ((m == 0xC0 || m == 0xC1 || m == 0xC2) && !t->frame) frame_seen(p, len, i, seg, m, t);
        if (m == 0xDA) why = scan_seen(p, len, i, seg, t);
        if (why) return why;
        i = end;
        if (m == 0xDA) /* entropy-coded data: up to a marker that is not stuffing or a restart */
            while (i + 1 < len && !(p[i] == 0xFF && p[i + 1] != 0x00 && p[i + 1] != 0xFF &&
                                    !(p[i + 1] >= 0xD0 && p[i + 1] <= 0xD7)))
                i++;
    }
    return t->done ? frame_complete(t) : NULL; /* no EOI: image.c refuses the cut file */
}

static const char *jpeg(const unsigned char *p, size_t len, size_t i)
{
    jpeg_tables t = {0};
    return jpeg_walk(p, len, i, &t);
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

/* What the palette checks and the rewrite need from the chunks seen so far. */
typedef struct {
    int palette_image; /* IHDR colour type 3 */
    size_t entries;    /* of the last PLTE, as stb counts them (0: none yet) */
    size_t short_plte; /* PLTE chunks stb accepts with fewer than 256 entries */
    size_t empty_idat; /* IDAT chunks of length 0 */
} png_palette;

static const char *palette_visit(const unsigned char *c, size_t n, void *arg)
{
    png_palette *pal = arg;
    if (!memcmp(c + 4, "IDAT", 4) && n == 0) pal->empty_idat++;
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

static int png_rewrite(const unsigned char *p, size_t len, unsigned char **copy, size_t *copy_len)
{
    png_palette pal = {0};
    aibox_status code;
    if (png_walk(p, len, &code, palette_visit, &pal) || !(pal.short_plte | pal.empty_idat)) return 0;
    size_t cap = len + pal.short_plte * 768;
    unsigned char *out = malloc(cap);
    if (!out) return -1;
    /* the same walk, copying: short PLTE chunks grow to 768 bytes, zero-filled,
     * with their CRC recomputed; empty IDAT chunks are left out; everything
     * else as it is */
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
        } else if (n == 0 && !memcmp(p + i + 4, "IDAT", 4)) {
            /* left out */
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

/* The typical tables of ITU T.81 Annex K.3 (the ones libjpeg supplies for a
 * missing table 0 or 1): class/id byte, 16 counts, symbols. */
static const unsigned char std_dc0[] = {0x00, 0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0,
                                        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
static const unsigned char std_dc1[] = {0x01, 0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,
                                        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
static const unsigned char std_ac0[] = {
    0x10, 0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d,
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07, 0x22, 0x71, 0x14,
    0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09,
    0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a,
    0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65,
    0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88,
    0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9,
    0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca,
    0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea,
    0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa};
static const unsigned char std_ac1[] = {
    0x11, 0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77,
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71, 0x13, 0x22, 0x32,
    0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0, 0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16,
    0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39,
    0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64,
    0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86,
    0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
    0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8,
    0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9,
    0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa};

/* A JPEG whose scans use Huffman table 0 or 1 before any DHT defines it (a
 * motion-JPEG frame, as many cameras save them, has none): a copy with one
 * DHT segment of those standard tables just after SOI, which later DHT
 * segments override as they would any table. stb alone decodes such scans
 * from uninitialised tables. soi: the offset just after the SOI marker. */
static int jpeg_std_tables(const unsigned char *p, size_t len, size_t soi, unsigned char **copy, size_t *copy_len)
{
    jpeg_tables t = {0};
    if (jpeg_walk(p, len, soi, &t) || !(t.need_std[0] | t.need_std[1])) return 0;
    const unsigned char *tab[4] = {std_dc0, std_dc1, std_ac0, std_ac1};
    size_t size[4] = {sizeof std_dc0, sizeof std_dc1, sizeof std_ac0, sizeof std_ac1}, seg = 2;
    for (int k = 0; k < 4; k++)
        if (t.need_std[k / 2] >> (k % 2) & 1) seg += size[k];
    unsigned char *out = malloc(len + 2 + seg);
    if (!out) return -1;
    memcpy(out, p, soi);
    size_t o = soi;
    out[o++] = 0xFF, out[o++] = 0xC4, out[o++] = (unsigned char)(seg >> 8), out[o++] = (unsigned char)seg;
    for (int k = 0; k < 4; k++)
        if (t.need_std[k / 2] >> (k % 2) & 1) memcpy(out + o, tab[k], size[k]), o += size[k];
    memcpy(out + o, p + soi, len - soi);
    *copy = out, *copy_len = o + len - soi;
    return 1;
}

/* offset just after a JPEG's SOI marker (stb reads a JPEG's first marker as
 * any other: fill bytes may precede it), or 0 */
static size_t jpeg_soi(const unsigned char *p, size_t len)
{
    size_t i = 0;
    while (i < len && p[i] == 0xFF) i++;
    return i > 0 && i < len && p[i] == 0xD8 ? i + 1 : 0;
}

static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

int aibox_stb_rewrite(const unsigned char *p, size_t len, unsigned char **copy, size_t *copy_len)
{
    *copy = NULL, *copy_len = 0;
    if (len >= 8 && !memcmp(p, png_sig, 8)) return png_rewrite(p, len, copy, copy_len);
    size_t soi = jpeg_soi(p, len);
    return soi ? jpeg_std_tables(p, len, soi, copy, copy_len) : 0;
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
    if (len >= 8 && !memcmp(p, png_sig, 8)) return png(p, len, code);
    *code = AIBOX_E_FORMAT;
    if (len >= 2 && p[0] == 'P' && (p[1] == '5' || p[1] == '6')) return pnm(p, len);
    size_t soi = jpeg_soi(p, len);
    return soi ? jpeg(p, len, soi) : NULL;
}
