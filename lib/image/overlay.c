/* Pictures of anomaly maps: a jet-coloured heatmap blended over the image,
 * and a binary mask. The map is resized with aibox_map_resize (lib/ops),
 * the same bilinear rule PaDiM's scoring uses, so the picture shows the very
 * values that were thresholded. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image/image.h"

static float clamp01(float v) { return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v); }

/* Blend one channel: alpha * colour + (1 - alpha) * pixel, rounded. */
static uint8_t blend(float colour01, uint8_t pixel, float alpha)
{
    const float v = alpha * colour01 * 255.0f + (1.0f - alpha) * (float)pixel + 0.5f;
    return v >= 255.0f ? 255 : (uint8_t)v; /* v >= 0.5: both terms are non-negative */
}

aibox_status aibox_heatmap_overlay(aibox_image *dst, const aibox_image *img, const float *map, int mw, int mh,
                                   float lo, float hi, float alpha, aibox_error *err)
{
    if (!dst) return aibox_fail(err, AIBOX_E_INVALID, "heatmap overlay: NULL output image");
    if (dst == img) return aibox_fail(err, AIBOX_E_INVALID, "heatmap overlay: output and input are the same image");
    memset(dst, 0, sizeof *dst);
    aibox_status st = aibox_img_check(img, "heatmap overlay", err);
    if (st) return st;
    if (!map) return aibox_fail(err, AIBOX_E_INVALID, "heatmap overlay: NULL map");
    if (mw < 1 || mh < 1) return aibox_fail(err, AIBOX_E_INVALID, "heatmap overlay: map size %dx%d", mw, mh);
    if (!isfinite(lo) || !isfinite(hi) || !(lo < hi))
        return aibox_fail(err, AIBOX_E_INVALID, "heatmap overlay: range lo %g, hi %g (want finite lo < hi)",
                          (double)lo, (double)hi);
    if (!(alpha >= 0.0f && alpha <= 1.0f))
        return aibox_fail(err, AIBOX_E_INVALID, "heatmap overlay: alpha %g (want 0..1)", (double)alpha);
    const int w = img->width, h = img->height, c = img->channels;
    const size_t npix = (size_t)w * (size_t)h;
    const size_t bytes = aibox_img_bytes(w, h, 3);
    if (!bytes) return aibox_fail(err, AIBOX_E_INVALID, "heatmap overlay: %dx%d RGB is too large", w, h);
    uint8_t *out = malloc(bytes);
    float *resized = NULL;
    if (mw != w || mh != h) resized = malloc(npix * sizeof(float));
    if (!out || ((mw != w || mh != h) && !resized)) {
        free(out), free(resized);
        return aibox_fail(err, AIBOX_E_NOMEM, "heatmap overlay: out of memory");
    }
    if (resized) {
        st = aibox_map_resize(map, mw, mh, resized, w, h, err);
        if (st) {
            free(out), free(resized);
            return st;
        }
        map = resized;
    }
    const float scale = 1.0f / (hi - lo);
    for (size_t i = 0; i < npix; i++) {
        float v = (map[i] - lo) * scale;
        v = v != v ? 1.0f : clamp01(v); /* NaN fails as every threshold does: the hot end */
        const float cr = clamp01(1.5f - fabsf(4.0f * v - 3.0f));
        const float cg = clamp01(1.5f - fabsf(4.0f * v - 2.0f));
        const float cb = clamp01(1.5f - fabsf(4.0f * v - 1.0f));
        const uint8_t *p = img->data + i * (size_t)c;
        const uint8_t pr = p[0], pg = c == 1 ? p[0] : p[1], pb = c == 1 ? p[0] : p[2];
        out[3 * i + 0] = blend(cr, pr, alpha);
        out[3 * i + 1] = blend(cg, pg, alpha);
        out[3 * i + 2] = blend(cb, pb, alpha);
    }
    free(resized);
    dst->width = w;
    dst->height = h;
    dst->channels = 3;
    dst->data = out;
    return AIBOX_OK;
}

aibox_status aibox_map_mask(aibox_image *dst, const float *map, int w, int h, float threshold, aibox_error *err)
{
    if (!dst) return aibox_fail(err, AIBOX_E_INVALID, "map mask: NULL output image");
    memset(dst, 0, sizeof *dst);
    if (!map) return aibox_fail(err, AIBOX_E_INVALID, "map mask: NULL map");
    if (threshold != threshold) return aibox_fail(err, AIBOX_E_INVALID, "map mask: NaN threshold");
    const size_t bytes = aibox_img_bytes(w, h, 1);
    if (!bytes) return aibox_fail(err, AIBOX_E_INVALID, "map mask: invalid size %dx%d", w, h);
    uint8_t *out = malloc(bytes);
    if (!out) return aibox_fail(err, AIBOX_E_NOMEM, "map mask: out of memory (%zu bytes)", bytes);
    for (size_t i = 0; i < bytes; i++) out[i] = map[i] < threshold ? 0 : 255; /* a NaN pixel fails: defect */
    dst->width = w;
    dst->height = h;
    dst->channels = 1;
    dst->data = out;
    return AIBOX_OK;
}
