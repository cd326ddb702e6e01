/* Pooling kernels: max, average and global average, forward and backward.
 *
 * Windows are clipped to the input: a window starts at (oy*sh - pt, ox*sw - pl)
 * in input coordinates and only its in-bounds cells take part. This covers the
 * top/left padding, the bottom/right padding and ceil-mode windows that hang
 * beyond the input alike, since the output size comes from the descriptor.
 *
 * Edge cases (chosen so that no descriptor leads to undefined behaviour):
 *  - max pool: padding never wins (PyTorch pads with -inf); NaN propagates as
 *    in PyTorch; ties keep the first cell in row-major order. A window with no
 *    in-bounds cell (only possible with padding >= kernel) yields 0 and
 *    argmax -1, which backward skips.
 *  - average pool, count_include_pad = 0: divides by the in-bounds cell count
 *    (0 for an empty window, which yields 0).
 *  - average pool, count_include_pad = 1: divides by kh*kw, always. PyTorch
 *    instead divides a ceil-mode window that overhangs the bottom/right
 *    padding by its part inside input+padding; the descriptor carries no
 *    bottom/right padding, so that case is not reproduced.
 */
#include <string.h>

#include "ops/ops.h"
#include "ops/simd.h"

/* Clipped window [*lo, *hi) along one axis for output index o. */
static inline void window(int o, int s, int pad, int k, int in, int *lo, int *hi)
{
    long start = (long)o * s - pad;
    long end = start + k;
    if (start < 0) start = 0;
    if (end > in) end = in;
    if (end < start) end = start;
    *lo = (int)start;
    *hi = (int)end;
}

/* 2x2 windows at stride 2 without padding (every CNN's downsampling), on
 * the windows that lie inside the input: branch-free, so it vectorises. Same
 * rule as the general loop: the first of equal maxima wins, NaN wins. */
AIBOX_CLONES_AVX2
static void maxpool_2x2(const aibox_pool_desc *d, const float *xp, float *yp, int32_t *ap)
{
    const int W = d->in_w, OW = d->out_w, full_h = AIBOX_MIN(d->out_h, d->in_h / 2), full_w = AIBOX_MIN(OW, W / 2);
    for (int oy = 0; oy < full_h; oy++) {
        const float *r0 = xp + (size_t)(2 * oy) * W, *r1 = r0 + W;
        float *yr = yp + (size_t)oy * OW;
        int32_t *ar = ap ? ap + (size_t)oy * OW : NULL;
        int32_t base = 2 * oy * W;
        for (int ox = 0; ox < full_w; ox++) {
            float a = r0[2 * ox], b = r0[2 * ox + 1], c = r1[2 * ox], e = r1[2 * ox + 1];
            float best = a;
            int32_t bi = base + 2 * ox;
            int tb = b > best || b != b;
            best = tb ? b : best, bi = tb ? base + 2 * ox + 1 : bi;
            int tc = c > best || c != c;
            best = tc ? c : best, bi = tc ? base + W + 2 * ox : bi;
            int te = e > best || e != e;
            best = te ? e : best, bi = te ? base + W + 2 * ox + 1 : bi;
            yr[ox] = best;
            if (ar) ar[ox] = bi;
        }
    }
}

static int is_2x2(const aibox_pool_desc *d)
{
    return d->kh == 2 && d->kw == 2 && d->sh == 2 && d->sw == 2 && d->pt == 0 && d->pl == 0;
}

/* Inference (no argmax), any window: the max over the window's rows first,
 * a whole input row at a time (vectorises), then over the columns. The
 * values equal the general loop's (NaN wins; which of equal maxima is
 * taken does not matter without an argmax). */
#define SEPARABLE_MAX_W 4096
static void maxpool_separable(const aibox_pool_desc *d, const float *xp, float *yp)
{
    float tmp[SEPARABLE_MAX_W];
    const int W = d->in_w;
    for (int oy = 0; oy < d->out_h; oy++) {
        int y0, y1;
        window(oy, d->sh, d->pt, d->kh, d->in_h, &y0, &y1);
        float *yr = yp + (size_t)oy * d->out_w;
        if (y1 <= y0) { /* a window wholly in the padding: as the general loop */
            for (int ox = 0; ox < d->out_w; ox++) yr[ox] = 0.0f;
            continue;
        }
        memcpy(tmp, xp + (size_t)y0 * W, sizeof(float) * (size_t)W);
        for (int iy = y0 + 1; iy < y1; iy++) {
            const float *row = xp + (size_t)iy * W;
            for (int ix = 0; ix < W; ix++) {
                float v = row[ix], t = tmp[ix];
                t = v > t ? v : t;        /* a NaN already in tmp stays */
                tmp[ix] = v != v ? v : t; /* a new NaN wins */
            }
        }
        /* columns: full windows tap by tap (vectorises), clipped ones at the borders */
        int oxa = (d->pl + d->sw - 1) / d->sw, oxb = d->out_w;
        while (oxb > oxa && (long)(oxb - 1) * d->sw - d->pl + d->kw > W) oxb--;
        if (oxb < oxa) oxb = oxa;
        for (int ox = 0; ox < d->out_w; ox++) {
            if (ox == oxa && oxb > oxa) {
                const float *t0 = tmp + (long)oxa * d->sw - d->pl;
                for (int o = 0; o < oxb - oxa; o++) yr[oxa + o] = t0[(long)o * d->sw];
                for (int j = 1; j < d->kw; j++)
                    for (int o = 0; o < oxb - oxa; o++) {
                        float v = t0[(long)o * d->sw + j], b = yr[oxa + o];
                        b = v > b ? v : b;
                        yr[oxa + o] = v != v ? v : b;
                    }
                ox = oxb - 1;
                continue;
            }
            int x0, x1;
            window(ox, d->sw, d->pl, d->kw, W, &x0, &x1);
            float best = x1 > x0 ? tmp[x0] : 0.0f;
            for (int ix = x0 + 1; ix < x1; ix++) best = (tmp[ix] > best || tmp[ix] != tmp[ix]) ? tmp[ix] : best;
            yr[ox] = best;
        }
    }
}

void aibox_maxpool_fwd(const aibox_pool_desc *d, int n, const float *x, float *y, int32_t *argmax)
{
    const size_t in_plane = (size_t)d->in_h * d->in_w;
    const size_t out_plane = (size_t)d->out_h * d->out_w;
    const size_t planes = (size_t)n * d->c;
    const int fast = is_2x2(d);
    if (!argmax && !fast && d->in_w <= SEPARABLE_MAX_W) {
        for (size_t p = 0; p < planes; p++) maxpool_separable(d, x + p * in_plane, y + p * out_plane);
        return;
    }
    for (size_t p = 0; p < planes; p++) {
        const float *xp = x + p * in_plane;
        float *yp = y + p * out_plane;
        int32_t *ap = argmax ? argmax + p * out_plane : NULL;
        int full_h = 0, full_w = 0;
        if (fast) {
            maxpool_2x2(d, xp, yp, ap);
            full_h = AIBOX_MIN(d->out_h, d->in_h / 2);
            full_w = AIBOX_MIN(d->out_w, d->in_w / 2);
        }
        for (int oy = 0; oy < d->out_h; oy++) {
            int y0, y1;
            window(oy, d->sh, d->pt, d->kh, d->in_h, &y0, &y1);
            for (int ox = oy < full_h ? full_w : 0; ox < d->out_w; ox++) {
                int x0, x1;
                window(ox, d->sw, d->pl, d->kw, d->in_w, &x0, &x1);
                float best = 0.0f;
                long bi = -1;
                for (int iy = y0; iy < y1; iy++) {
                    const float *row = xp + (size_t)iy * d->in_w;
                    for (int ix = x0; ix < x1; ix++) {
                        float v = row[ix];
                        /* strict > keeps the first of equal maxima; v != v lets
                         * NaN win and stay (nothing compares greater than it) */
                        if (bi < 0 || v > best || v != v) {
                            best = v;
                            bi = (long)iy * d->in_w + ix;
                        }
                    }
                }
                yp[(size_t)oy * d->out_w + ox] = best;
                if (ap) ap[(size_t)oy * d->out_w + ox] = (int32_t)bi;
            }
        }
    }
}

/* 2x2 / 2 windows inside the input, stored: each of the window's four cells
 * gets the output's gradient when it is the argmax, else 0 (branch-free, so
 * it vectorises). */
AIBOX_CLONES_AVX2
static void maxpool_2x2_bwd_set(const aibox_pool_desc *d, const float *g, const int32_t *a, float *dxp, int full_h,
                                int full_w)
{
    const int W = d->in_w, OW = d->out_w;
    for (int oy = 0; oy < full_h; oy++) {
        float *r0 = dxp + (size_t)(2 * oy) * W, *r1 = r0 + W;
        const float *gr = g + (size_t)oy * OW;
        const int32_t *ar = a + (size_t)oy * OW;
        const int32_t base = 2 * oy * W;
        for (int ox = 0; ox < full_w; ox++) {
            int32_t k = ar[ox] - base - 2 * ox; /* 0, 1, W, W + 1 */
            float v = gr[ox];
            r0[2 * ox] = k == 0 ? v : 0.0f;
            r0[2 * ox + 1] = k == 1 ? v : 0.0f;
            r1[2 * ox] = k == W ? v : 0.0f;
            r1[2 * ox + 1] = k == W + 1 ? v : 0.0f;
        }
    }
}

void aibox_maxpool_bwd_ex(const aibox_pool_desc *d, int n, const float *dy, const int32_t *argmax, float *dx,
                          int assign)
{
    const size_t in_plane = (size_t)d->in_h * d->in_w;
    const size_t out_plane = (size_t)d->out_h * d->out_w;
    const size_t planes = (size_t)n * d->c;
    const int fast = assign && is_2x2(d);
    const int full_h = fast ? AIBOX_MIN(d->out_h, d->in_h / 2) : 0;
    const int full_w = fast ? AIBOX_MIN(d->out_w, d->in_w / 2) : 0;
    for (size_t p = 0; p < planes; p++) {
        const float *g = dy + p * out_plane;
        const int32_t *a = argmax + p * out_plane;
        float *dxp = dx + p * in_plane;
        if (fast) {
            /* the cells outside the full windows first (zeros), then the
             * windows stored; outputs beyond them (ceil mode) add below */
            for (int iy = 0; iy < d->in_h; iy++) {
                int x0 = iy < 2 * full_h ? 2 * full_w : 0;
                memset(dxp + (size_t)iy * d->in_w + x0, 0, sizeof(float) * (size_t)(d->in_w - x0));
            }
            maxpool_2x2_bwd_set(d, g, a, dxp, full_h, full_w);
            if (full_h == d->out_h && full_w == d->out_w) continue;
            for (int oy = 0; oy < d->out_h; oy++)
                for (int ox = oy < full_h ? full_w : 0; ox < d->out_w; ox++) {
                    size_t i = (size_t)oy * d->out_w + ox;
                    if (a[i] >= 0) dxp[a[i]] += g[i];
                }
            continue;
        }
        if (assign) memset(dxp, 0, sizeof(float) * in_plane);
        for (size_t i = 0; i < out_plane; i++)
            if (a[i] >= 0) dxp[a[i]] += g[i];
    }
}

void aibox_maxpool_bwd(const aibox_pool_desc *d, int n, const float *dy, const int32_t *argmax, float *dx)
{
    aibox_maxpool_bwd_ex(d, n, dy, argmax, dx, 0);
}

/* Divisor of one window; 0 means an empty window. */
static inline int avg_divisor(const aibox_pool_desc *d, int y0, int y1, int x0, int x1)
{
    return d->count_include_pad ? d->kh * d->kw : (y1 - y0) * (x1 - x0);
}

void aibox_avgpool_fwd(const aibox_pool_desc *d, int n, const float *x, float *y)
{
    const size_t in_plane = (size_t)d->in_h * d->in_w;
    const size_t out_plane = (size_t)d->out_h * d->out_w;
    const size_t planes = (size_t)n * d->c;
    for (size_t p = 0; p < planes; p++) {
        const float *xp = x + p * in_plane;
        float *yp = y + p * out_plane;
        for (int oy = 0; oy < d->out_h; oy++) {
            int y0, y1;
            window(oy, d->sh, d->pt, d->kh, d->in_h, &y0, &y1);
            for (int ox = 0; ox < d->out_w; ox++) {
                int x0, x1;
                window(ox, d->sw, d->pl, d->kw, d->in_w, &x0, &x1);
                int div = avg_divisor(d, y0, y1, x0, x1);
                float s = 0.0f;
                for (int iy = y0; iy < y1; iy++) {
                    const float *row = xp + (size_t)iy * d->in_w;
                    for (int ix = x0; ix < x1; ix++) s += row[ix];
                }
                yp[(size_t)oy * d->out_w + ox] = div > 0 ? s / (float)div : 0.0f;
            }
        }
    }
}

void aibox_avgpool_bwd(const aibox_pool_desc *d, int n, const float *dy, float *dx)
{
    const size_t in_plane = (size_t)d->in_h * d->in_w;
    const size_t out_plane = (size_t)d->out_h * d->out_w;
    const size_t planes = (size_t)n * d->c;
    for (size_t p = 0; p < planes; p++) {
        const float *g = dy + p * out_plane;
        float *dxp = dx + p * in_plane;
        for (int oy = 0; oy < d->out_h; oy++) {
            int y0, y1;
            window(oy, d->sh, d->pt, d->kh, d->in_h, &y0, &y1);
            for (int ox = 0; ox < d->out_w; ox++) {
                int x0, x1;
                window(ox, d->sw, d->pl, d->kw, d->in_w, &x0, &x1);
                int div = avg_divisor(d, y0, y1, x0, x1);
                if (div <= 0) continue;
                float v = g[(size_t)oy * d->out_w + ox] / (float)div;
                for (int iy = y0; iy < y1; iy++) {
                    float *row = dxp + (size_t)iy * d->in_w;
                    for (int ix = x0; ix < x1; ix++) row[ix] += v;
                }
            }
        }
    }
}

void aibox_gap_fwd(int n, int c, int hw, const float *x, float *y)
{
    const size_t planes = (size_t)n * c;
    for (size_t p = 0; p < planes; p++) {
        if (hw <= 0) {
            y[p] = 0.0f;
            continue;
        }
        const float *xp = x + p * (size_t)hw;
        /* four double lanes: exact enough for large planes, and no single long
         * dependency chain */
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int i = 0;
        for (; i + 4 <= hw; i += 4) {
            s0 += xp[i];
            s1 += xp[i + 1];
            s2 += xp[i + 2];
            s3 += xp[i + 3];
        }
        for (; i < hw; i++) s0 += xp[i];
        y[p] = (float)((s0 + s1 + s2 + s3) / hw);
    }
}

void aibox_gap_bwd(int n, int c, int hw, const float *dy, float *dx)
{
    if (hw <= 0) return;
    const size_t planes = (size_t)n * c;
    const float inv = 1.0f / (float)hw;
    for (size_t p = 0; p < planes; p++) {
        float v = dy[p] * inv;
        float *dxp = dx + p * (size_t)hw;
        for (int i = 0; i < hw; i++) dxp[i] += v;
    }
}
