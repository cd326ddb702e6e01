/* Anomaly maps: PyTorch-style bilinear resize and Anomalib's Gaussian blur
 * (the two smoothing steps PaDiM applies to its patch scores, kernels in
 * lib/ops/map.c), and pictures of maps: a jet-coloured heatmap blended over
 * the image and a binary mask. Pictures resize the map with the same
 * bilinear rule the scoring uses, so they show the very values that were
 * thresholded. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image/image.h"
#include "ops/ops.h"

static aibox_status check_map(const void *p, int w, int h, const char *what, const char *name, aibox_error *err)
{
    if (!p) return aibox_fail(err, AIBOX_E_INVALID, "%s: NULL %s", what, name);
    if (w < 1 || h < 1) return aibox_fail(err, AIBOX_E_INVALID, "%s: %s size %dx%d (sides must be >= 1)", what, name, w, h);
    return AIBOX_OK;
}

aibox_status aibox_map_resize(const float *src, int sw, int sh, float *dst, int dw, int dh, aibox_error *err)
{
    aibox_status st = check_map(src, sw, sh, "map resize", "source map", err);
    if (!st) st = check_map(dst, dw, dh, "map resize", "destination map", err);
    if (st) return st;
    if ((const float *)dst == src)
        return aibox_fail(err, AIBOX_E_INVALID, "map resize: source and destination are the same buffer");
    /* The model's bilinear upsampling layer already is PyTorch's rule (in
     * float, as PyTorch computes float tensors); one plane of it. */
    aibox_upsample_bilinear_fwd(1, 1, sh, sw, dh, dw, src, dst);
    return AIBOX_OK;
}

aibox_status aibox_map_blur(float *map, int w, int h, float sigma, aibox_error *err)
{
    aibox_status st = check_map(map, w, h, "map blur", "map", err);
    if (st) return st;
    const int ks = aibox_map_blur_kernel_size(sigma);
    if (!ks)
        return aibox_fail(err, AIBOX_E_INVALID, "map blur: sigma %g (want 0 < sigma <= %g)", (double)sigma,
                          (double)AIBOX_BLUR_SIGMA_MAX);
    const int r = ks / 2;
    size_t plane;
    if (!aibox_mul_ok((size_t)w, (size_t)h, &plane) || plane > ((size_t)-1) / sizeof(float) / 2)
        return aibox_fail(err, AIBOX_E_INVALID, "map blur: map %dx%d too large", w, h);
    /* tmp: the row-blurred map; pad: one row with its mirrored borders; k: the kernel. */
    const size_t nfloats = plane + (size_t)w + 2 * (size_t)r + (size_t)ks;
    float *tmp = malloc(nfloats * sizeof(float));
    if (!tmp) return aibox_fail(err, AIBOX_E_NOMEM, "map blur: out of memory (%zu floats of scratch)", nfloats);
    float *pad = tmp + plane, *k = pad + (size_t)w + 2 * (size_t)r;
    aibox_map_blur_kernel(sigma, k);
    aibox_map_blur_rows(map, tmp, pad, w, k, ks, 0, h);
    aibox_map_blur_cols(map, tmp, w, h, k, ks, 0, h); /* written back into map row by row from the copy */
    free(tmp);
    return AIBOX_OK;
}

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
