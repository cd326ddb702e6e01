/* Float maps (one value per pixel, row-major): PyTorch-style bilinear resize
 * and Anomalib's Gaussian blur, the two smoothing steps PaDiM applies to its
 * patch-score maps. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

int aibox_map_blur_kernel_size(float sigma)
{
    if (!(sigma > 0.0f) || !(sigma <= AIBOX_BLUR_SIGMA_MAX)) return 0; /* NaN fails both */
    return 2 * (int)(4.0 * (double)sigma + 0.5) + 1; /* in double, as Python computes it */
}

/* Index i (any integer) mirrored into 0..n-1 without repeating the edge,
 * periodically (period 2(n-1)), which is numpy's 'reflect' for any pad. */
static int reflect(long i, int n)
{
    if (n == 1) return 0;
    const long p = 2L * (n - 1);
    long m = i % p;
    if (m < 0) m += p;
    return (int)(m < n ? m : p - m);
}

void aibox_map_blur_kernel(float sigma, float *k)
{
    const int ks = aibox_map_blur_kernel_size(sigma), r = ks / 2;
    /* kornia's gaussian: exp(-x^2 / (2 sigma^2)) at x = -r..r, over its sum
     * (kornia works in float; double here then rounded once). */
    double sum = 0;
    for (int i = 0; i < ks; i++) {
        const double x = (double)(i - r);
        sum += exp(-x * x / (2.0 * (double)sigma * (double)sigma));
    }
    for (int i = 0; i < ks; i++) {
        const double x = (double)(i - r);
        k[i] = (float)(exp(-x * x / (2.0 * (double)sigma * (double)sigma)) / sum);
    }
}

void aibox_map_blur_rows(const float *map, float *tmp, float *pad, int w, const float *k, int ks, int y0, int y1)
{
    const int r = ks / 2;
    /* out[x] = sum_j k[j] * pad[x + j]; the loop over x innermost so it
     * vectorises without reassociating a sum. */
    for (int y = y0; y < y1; y++) {
        const float *row = map + (size_t)y * w;
        float *out = tmp + (size_t)y * w;
        for (long i = 0; i < (long)w + 2L * r; i++) pad[i] = row[reflect(i - r, w)];
        for (int x = 0; x < w; x++) out[x] = k[0] * pad[x];
        for (int j = 1; j < ks; j++) {
            const float kj = k[j];
            const float *p = pad + j;
            for (int x = 0; x < w; x++) out[x] += kj * p[x];
        }
    }
}

void aibox_map_blur_cols(float *map, const float *tmp, int w, int h, const float *k, int ks, int y0, int y1)
{
    const int r = ks / 2;
    for (int y = y0; y < y1; y++) {
        float *out = map + (size_t)y * w;
        const float *src = tmp + (size_t)reflect((long)y - r, h) * w;
        for (int x = 0; x < w; x++) out[x] = k[0] * src[x];
        for (int j = 1; j < ks; j++) {
            const float kj = k[j];
            src = tmp + (size_t)reflect((long)y + j - r, h) * w;
            for (int x = 0; x < w; x++) out[x] += kj * src[x];
        }
    }
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
