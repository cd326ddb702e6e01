/* Float-map kernels (one value per pixel, row-major): Anomalib's Gaussian
 * blur in pieces that callers split over threads. The public map calls
 * (resize, blur, regions, pictures) are lib/anomaly/maps.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"

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
