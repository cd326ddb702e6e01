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
#include <stdint.h>
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

/* The magic numbers stb_image tests; TGA has none and is FMT_OTHER. */
static img_format sniff(const unsigned char *p, size_t len)
{
    if (len >= 2 && p[0] == 0xFF && p[1] == 0xD8) return FMT_JPEG;
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

/* Whether a JPEG or PNG that stb refused is cut short: stb_image (this
 * version) refuses cut-off JPEGs and PNGs, but its reason ("expected
 * marker", "outofdata", or one left over from probing another format) does
 * not say so. A complete JPEG ends with EOI (FF D9), possibly followed by
 * zero padding; a complete PNG with an IEND chunk. Only used to explain a
 * refusal, so JPEGs with bytes after EOI (phones' motion photos) still load
 * as stb loads them. `header_only`: stb failed reading just the header. */
static const char *truncation(img_format fmt, const unsigned char *p, size_t len, int header_only)
{
    if (fmt == FMT_JPEG) {
        while (len > 2 && p[len - 1] == 0) len--;
        if (len < 4 || p[len - 2] != 0xFF || p[len - 1] != 0xD9) return "truncated JPEG (no end-of-image marker)";
    } else if (fmt == FMT_PNG) {
        if (header_only ? len < 33 : len < 20 || memcmp(p + len - 8, "IEND", 4) != 0) /* IEND's type, then its CRC */
            return "truncated PNG (no IEND chunk)";
    }
    return NULL;
}

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
    const char *cut = truncation(fmt, p, len, header_only);
    if (cut) return aibox_fail(err, AIBOX_E_CORRUPT, "%s: %s", name, cut);
    return aibox_fail(err, AIBOX_E_FORMAT, "%s: cannot decode: %s", name, why);
}

/* Binary PGM/PPM header, read as stb reads it: "P5" or "P6", then width,
 * height and maximum value, each after whitespace and #-comments, then one
 * byte, then the samples (big-endian when maxval > 255). */
typedef struct {
    long long w, h, maxv;
    int channels;
    size_t data;
} pnm_header;

static int pnm_parse(const unsigned char *p, size_t len, pnm_header *hd)
{
    size_t i = 2;
    long long v[3];
    for (int k = 0; k < 3; k++) {
        for (;;) {
            while (i < len && (p[i] == ' ' || (p[i] >= '\t' && p[i] <= '\r'))) i++;
            if (i >= len || p[i] != '#') break;
            while (i < len && p[i] != '\n' && p[i] != '\r') i++;
        }
        if (i >= len || p[i] < '0' || p[i] > '9') return 0;
        v[k] = 0;
        while (i < len && p[i] >= '0' && p[i] <= '9') {
            v[k] = v[k] * 10 + (p[i++] - '0');
            if (v[k] > INT_MAX) return 0; /* stb's int would overflow: not a header we trust */
        }
    }
    if (i >= len) return 0;
    hd->w = v[0], hd->h = v[1], hd->maxv = v[2];
    hd->channels = p[1] == '6' ? 3 : 1;
    hd->data = i + 1;
    return 1;
}

/* stb's PNM reader copies the samples with a read whose shortfall it ignores
 * (the pixels would be uninitialised memory), reads 16-bit samples in host
 * byte order, and ignores maxval: checked here and fixed after decoding. */
static aibox_status pnm_check(const unsigned char *p, size_t len, int w, int h, pnm_header *hd, const char *name,
                              aibox_error *err)
{
    if (!pnm_parse(p, len, hd) || hd->w != w || hd->h != h)
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: malformed PGM/PPM header", name);
    if (hd->maxv < 1) return aibox_fail(err, AIBOX_E_FORMAT, "%s: PGM/PPM maximum value is 0", name);
    unsigned long long need = (unsigned long long)w * (unsigned long long)h * (unsigned)hd->channels *
                              (hd->maxv > 255 ? 2u : 1u);
    if (len - hd->data < need)
        return aibox_fail(err, AIBOX_E_CORRUPT, "%s: truncated PGM/PPM (%zu of %llu sample bytes)", name,
                          len - hd->data, need);
    return AIBOX_OK;
}

/* stb reads uncompressed true-colour and grey TGA rows with the same
 * unchecked copy; RLE and colour-mapped TGAs read byte by byte, getting
 * zeros past the end (deterministic). 1 when an uncompressed TGA that stb
 * sized w x h lacks pixel bytes. */
static int tga_truncated(const unsigned char *p, size_t len, int w, int h)
{
    if (len < 18 || p[1] != 0 || (p[2] != 2 && p[2] != 3)) return 0;
    int tw = p[12] | p[13] << 8, th = p[14] | p[15] << 8, bpp = p[16];
    if (tw != w || th != h) return 0;                    /* not the header stb read */
    if (bpp % 8 || bpp < 8 || bpp > 32 || (p[2] == 2 && bpp == 16)) return 0; /* 15/16-bit RGB: byte by byte */
    return len < 18u + p[0] + (unsigned long long)w * (unsigned long long)h * (unsigned)(bpp / 8);
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
    if (w <= 0 || h <= 0) return aibox_fail(err, AIBOX_E_FORMAT, "%s: header says %dx%d pixels", name, w, h);
    if ((long long)w * h > cap) /* ints below 2^31: the product fits in long long */
        return aibox_fail(err, AIBOX_E_UNSUPPORTED, "%s: %dx%d pixels exceeds the %lld-pixel limit", name, w, h, cap);
    pnm_header pnm = {0};
    aibox_status st;
    if (fmt == FMT_PNM && (st = pnm_check(p, len, w, h, &pnm, name, err))) return st;
    if (fmt == FMT_OTHER && tga_truncated(p, len, w, h))
        return aibox_fail(err, AIBOX_E_CORRUPT, "%s: truncated TGA (pixel data cut short)", name);

    int x, y, c;
    uint8_t *px;
    if (stbi_is_16_bit_from_memory(p, (int)len)) { /* 16-bit PNG, PGM/PPM with maxval > 255 */
        uint16_t *wide = stbi_load_16_from_memory(p, (int)len, &x, &y, &c, 0);
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
        px = stbi_load_from_memory(p, (int)len, &x, &y, &c, 0);
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
    if (!path || !*path) return aibox_fail(err, AIBOX_E_INVALID, "image load: empty path");
    /* open(2) rather than fopen: O_NONBLOCK keeps a FIFO given by mistake
     * from hanging the open; fstat then refuses it. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return aibox_fail(err, errno == ENOENT ? AIBOX_E_NOTFOUND : AIBOX_E_IO, "%s: cannot open: %s", path,
                          strerror(errno));
    aibox_status st = AIBOX_OK;
    unsigned char *buf = NULL;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st = aibox_fail(err, AIBOX_E_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = aibox_fail(err, AIBOX_E_IO, "%s: not a regular file", path);
        goto done;
    }
    if (sb.st_size == 0) {
        st = aibox_fail(err, AIBOX_E_FORMAT, "%s: empty file", path);
        goto done;
    }
    if (sb.st_size > MAX_FILE_BYTES) {
        st = aibox_fail(err, AIBOX_E_UNSUPPORTED, "%s: %lld bytes exceeds the 1 GiB image file limit", path,
                        (long long)sb.st_size);
        goto done;
    }
    size_t size = (size_t)sb.st_size;
    buf = malloc(size);
    if (!buf) {
        st = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory reading %zu bytes", path, size);
        goto done;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            st = aibox_fail(err, AIBOX_E_IO, "%s: cannot read: %s", path, strerror(errno));
            goto done;
        }
        if (r == 0) {
            st = aibox_fail(err, AIBOX_E_IO, "%s: file shrank while reading (%zu of %zu bytes)", path, got, size);
            goto done;
        }
        got += (size_t)r;
    }
    close(fd);
    fd = -1;
    st = aibox_image_decode(img, buf, size, path, max_pixels, err);
done:
    if (fd >= 0) close(fd);
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
