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
 * nor a restart marker). */
#include "image/stb_guard.h"

#include <stdint.h>

static unsigned be16(const unsigned char *p) { return (unsigned)p[0] << 8 | p[1]; }

/* Checks the tables of a DHT segment's payload [p, p + n). */
static const char *dht_ok(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (n - i < 17) return NULL; /* stb fails on the short read itself */
        unsigned total = 0;
        for (int k = 1; k <= 16; k++) total += p[i + k];
        if (total > 256) return "corrupt JPEG: a Huffman table with more than 256 codes";
        i += 17 + total;
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
            const char *why = dht_ok(p + i + 2, end - (i + 2));
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

const char *aibox_stb_guard(const unsigned char *p, size_t len)
{
    /* stb reads a JPEG's first marker as any other: fill bytes (FF) may precede SOI */
    size_t i = 0;
    while (i < len && p[i] == 0xFF) i++;
    if (i > 0 && i < len && p[i] == 0xD8) return jpeg(p, len, i + 1);
    return NULL;
}
