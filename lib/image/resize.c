/* Image resizing: stb_image_resize's default filters ("area"), and
 * TensorFlow Lite's bilinear and nearest-neighbour kernels with
 * align_corners = false, half_pixel_centers = false (and bilinear with
 * half_pixel_centers = true), written out here so a model trained against
 * TensorFlow sees the same pixels at inference. Bilinear values become 8-bit
 * pixels the way TFLite's image pipelines make them (label_image, Coral's
 * tests: RESIZE_BILINEAR in float, then a C cast to uint8, i.e. truncation):
 * a quantised model's score is sensitive to that last step (cat.bmp on the
 * 0.25/128 model: 93/256 truncated, 88/256 rounded, as LiteRT gives too). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* stb_image_resize is compiled here, with this build's flags, not called in
 * Debian's libstb.so: that is built with GCC's default -ffp-contract=fast,
 * which on aarch64 fuses the filters' multiply-adds into FMAs, so some
 * pixels came out one level apart from x86 (tests/arm64/agree.sh found it on
 * NEU images). Compiled with -ffp-contract=off it gives the same bytes on
 * every architecture, and x86's as before (no FMA there either). Its
 * functions are static (STB_IMAGE_RESIZE_STATIC): nothing leaks from the
 * library; its own warnings are not ours to fix. */
#define STB_IMAGE_RESIZE_STATIC
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <stb_image_resize.h>
#pragma GCC diagnostic pop

#include "image/image.h"

const char *aibox_resize_mode_name(aibox_resize_mode m)
{
    switch (m) {
    case AIBOX_RESIZE_AREA: return "area";
    case AIBOX_RESIZE_BILINEAR: return "bilinear";
    case AIBOX_RESIZE_NEAREST: return "nearest";
    case AIBOX_RESIZE_BILINEAR_CENTER: return "bilinear_center";
    }
    return NULL; /* not a mode: NULL rather than a name that would parse or be stored */
}

aibox_status aibox_resize_mode_parse(const char *name, aibox_resize_mode *m)
{
    if (!name || !m) return AIBOX_E_INVALID;
    static const aibox_resize_mode all[] = {AIBOX_RESIZE_AREA, AIBOX_RESIZE_BILINEAR, AIBOX_RESIZE_NEAREST,
                                            AIBOX_RESIZE_BILINEAR_CENTER};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcasecmp(name, aibox_resize_mode_name(all[i])) == 0) {
            *m = all[i];
            return AIBOX_OK;
        }
    return AIBOX_E_INVALID;
}

/* TFLite's ComputeInterpolationValues, in float as TFLite does:
 * src = dst * (in / out) (half_pixel_centers = false), or
 * src = (dst + 0.5) * (in / out) - 0.5 (true); lo = max(floor(src), 0),
 * hi = min(ceil(src), in - 1), frac = src - floor(src). */
typedef struct {
    int lo, hi;
    float frac;
} tap;

static void bilinear_taps(tap *t, int out, int in, int half_pixel)
{
    const float scale = (float)in / (float)out;
    for (int i = 0; i < out; i++) {
        float s = half_pixel ? ((float)i + 0.5f) * scale - 0.5f : (float)i * scale;
        int lo = (int)floorf(s), hi = (int)ceilf(s);
        t[i].frac = s - (float)lo;
        t[i].lo = lo < 0 ? 0 : lo;
        t[i].hi = hi < 0 ? 0 : hi > in - 1 ? in - 1 : hi;
    }
}

/* TFLite's float kernel: the four weights and the weighted sum in float, in
 * its order; the C cast to uint8 truncates, as the pipelines above do. */
static void resize_bilinear(const aibox_image *src, uint8_t *out, int ow, int oh, tap *tx, tap *ty, int half_pixel)
{
    const int c = src->channels;
    const size_t row = (size_t)src->width * (size_t)c;
    bilinear_taps(tx, ow, src->width, half_pixel);
    bilinear_taps(ty, oh, src->height, half_pixel);
    for (int y = 0; y < oh; y++) {
        const uint8_t *r0 = src->data + (size_t)ty[y].lo * row, *r1 = src->data + (size_t)ty[y].hi * row;
        const float dy = ty[y].frac;
        for (int x = 0; x < ow; x++) {
            const float dx = tx[x].frac;
            const float w00 = (1 - dy) * (1 - dx), w01 = (1 - dy) * dx, w10 = dy * (1 - dx), w11 = dy * dx;
            const size_t i0 = (size_t)tx[x].lo * (size_t)c, i1 = (size_t)tx[x].hi * (size_t)c;
            for (int k = 0; k < c; k++) {
                float v = r0[i0 + k] * w00 + r0[i1 + k] * w01 + r1[i0 + k] * w10 + r1[i1 + k] * w11;
                *out++ = v >= 255.0f ? 255 : (uint8_t)v; /* weights sum to 1, + float error */
            }
        }
    }
}

/* TFLite's GetNearestNeighbor (align_corners = false, half_pixel_centers =
 * false): min(floor(dst * (float)(in / out)), in - 1) in float. This is
 * floor(dst * in / out) except where the float scale rounds down across an
 * integer (e.g. in 2, out 82, dst 41 gives 0, not 1); we keep TF's result. */
static void nearest_index(int *idx, int out, int in)
{
    const float scale = (float)in / (float)out;
    for (int i = 0; i < out; i++) {
        int s = (int)floorf((float)i * scale);
        idx[i] = s > in - 1 ? in - 1 : s;
    }
}

static void resize_nearest(const aibox_image *src, uint8_t *out, int ow, int oh, int *ix, int *iy)
{
    const size_t c = (size_t)src->channels, row = (size_t)src->width * c;
    nearest_index(ix, ow, src->width);
    nearest_index(iy, oh, src->height);
    for (int y = 0; y < oh; y++) {
        const uint8_t *r = src->data + (size_t)iy[y] * row;
        for (int x = 0; x < ow; x++, out += c) memcpy(out, r + (size_t)ix[x] * c, c);
    }
}

aibox_status aibox_image_resize(aibox_image *dst, const aibox_image *src, int width, int height,
                                aibox_resize_mode mode, aibox_error *err)
{
    if (!dst) return aibox_fail(err, AIBOX_E_INVALID, "image resize: NULL output image");
    if (dst == src) return aibox_fail(err, AIBOX_E_INVALID, "image resize: output and input are the same image");
    memset(dst, 0, sizeof *dst);
    aibox_status st = aibox_img_check(src, "image resize", err);
    if (st) return st;
    if (!aibox_resize_mode_name(mode)) return aibox_fail(err, AIBOX_E_INVALID, "image resize: unknown mode %d", (int)mode);
    size_t bytes = aibox_img_bytes(width, height, src->channels);
    if (!bytes)
        return aibox_fail(err, AIBOX_E_INVALID, "image resize: invalid target size %dx%d (sides 1..%d, at most %llu bytes)",
                          width, height, AIBOX_IMG_MAX_DIM, AIBOX_IMG_MAX_BYTES);
    /* Same size: a copy. Bilinear and nearest are the identity there; stb
     * would run its downsampling filter (Mitchell) at ratio 1, a slight blur,
     * where any ratio just above 1 (Catmull-Rom) is nearly the identity. */
    if (width == src->width && height == src->height) return aibox_image_copy(dst, src, err);
    uint8_t *out = malloc(bytes);
    if (!out) return aibox_fail(err, AIBOX_E_NOMEM, "image resize: out of memory (%zu bytes)", bytes);
    const int c = src->channels;
    if (mode == AIBOX_RESIZE_AREA) {
        /* Same as stbir_resize_uint8: Mitchell filter when shrinking, Catmull-Rom
         * when enlarging, clamped edges, linear values (no sRGB decoding), every
         * channel filtered on its own (alpha does not weight colour). */
        int ok = stbir_resize_uint8_generic(src->data, src->width, src->height, src->width * c, out, width, height,
                                            width * c, c, STBIR_ALPHA_CHANNEL_NONE, 0, STBIR_EDGE_CLAMP,
                                            STBIR_FILTER_DEFAULT, STBIR_COLORSPACE_LINEAR, NULL);
        if (!ok) {
            free(out);
            return aibox_fail(err, AIBOX_E_NOMEM, "image resize: stb_image_resize failed %dx%d -> %dx%d (out of memory)",
                              src->width, src->height, width, height);
        }
    } else {
        /* Per-column and per-row taps, computed once. */
        int bilinear = mode == AIBOX_RESIZE_BILINEAR || mode == AIBOX_RESIZE_BILINEAR_CENTER;
        size_t unit = bilinear ? sizeof(tap) : sizeof(int);
        void *tx = malloc(unit * (size_t)width), *ty = malloc(unit * (size_t)height);
        if (!tx || !ty) {
            free(tx), free(ty), free(out);
            return aibox_fail(err, AIBOX_E_NOMEM, "image resize: out of memory");
        }
        if (bilinear) resize_bilinear(src, out, width, height, tx, ty, mode == AIBOX_RESIZE_BILINEAR_CENTER);
        else resize_nearest(src, out, width, height, tx, ty);
        free(tx), free(ty);
    }
    dst->width = width;
    dst->height = height;
    dst->channels = c;
    dst->data = out;
    return AIBOX_OK;
}
