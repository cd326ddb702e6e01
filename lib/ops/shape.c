/* Shape operations: zero padding, channel concatenation, addition and
 * nearest / bilinear upsampling, forward and backward. */
#include <math.h>
#include <string.h>

#include "ops/ops.h"

/* ------------------------------------------------------------ zero padding */
/* Output plane is (h+pt+pb) x (w+pl+pr). A negative pad crops (the same index
 * arithmetic covers it), so no pad value leads to an out-of-bounds access. */

/* Output columns [*o0, *o1) copy input columns starting at *i0 (all for one row). */
static int pad_cols(int w, int pl, int ow, int *o0, int *o1, int *i0)
{
    int a = pl > 0 ? pl : 0;           /* first output column with a source */
    long b = (long)pl + w;             /* one past the last */
    if (b > ow) b = ow;
    *o0 = a;
    *o1 = (int)(b > a ? b : a);
    *i0 = a - pl;
    return *o1 > *o0;
}

void aibox_zeropad_fwd(int n, int c, int h, int w, int pt, int pl, int pb, int pr, const float *x, float *y)
{
    const int oh = h + pt + pb, ow = w + pl + pr;
    if (oh <= 0 || ow <= 0 || n <= 0 || c <= 0) return;
    int o0, o1, i0;
    const int has = pad_cols(w, pl, ow, &o0, &o1, &i0);
    const size_t planes = (size_t)n * c;
    for (size_t p = 0; p < planes; p++) {
        const float *xp = x + p * (size_t)h * w;
        float *yp = y + p * (size_t)oh * ow;
        for (int oy = 0; oy < oh; oy++) {
            float *row = yp + (size_t)oy * ow;
            const int iy = oy - pt;
            if (iy < 0 || iy >= h || !has) {
                memset(row, 0, (size_t)ow * sizeof *row);
                continue;
            }
            memset(row, 0, (size_t)o0 * sizeof *row);
            memcpy(row + o0, xp + (size_t)iy * w + i0, (size_t)(o1 - o0) * sizeof *row);
            memset(row + o1, 0, (size_t)(ow - o1) * sizeof *row);
        }
    }
}

void aibox_zeropad_bwd(int n, int c, int h, int w, int pt, int pl, int pb, int pr, const float *dy, float *dx)
{
    const int oh = h + pt + pb, ow = w + pl + pr;
    if (oh <= 0 || ow <= 0 || n <= 0 || c <= 0) return;
    int o0, o1, i0;
    if (!pad_cols(w, pl, ow, &o0, &o1, &i0)) return;
    const int y0 = pt > 0 ? 0 : -pt;                        /* first input row with an output */
    const int y1 = (long)oh - pt < h ? oh - pt : h;         /* one past the last */
    const size_t planes = (size_t)n * c;
    for (size_t p = 0; p < planes; p++) {
        const float *gp = dy + p * (size_t)oh * ow;
        float *dxp = dx + p * (size_t)h * w;
        for (int iy = y0; iy < y1; iy++) {
            const float *g = gp + (size_t)(iy + pt) * ow + o0;
            float *d = dxp + (size_t)iy * w + i0;
            for (int i = 0; i < o1 - o0; i++) d[i] += g[i];
        }
    }
}

/* ------------------------------------------------------------ concat, add */
void aibox_concat_fwd(int n, int k, const int *cs, int hw, const float *const *xs, float *y)
{
    for (int s = 0; s < n; s++) {
        for (int i = 0; i < k; i++) {
            const size_t len = (size_t)cs[i] * hw;
            memcpy(y, xs[i] + (size_t)s * len, len * sizeof *y);
            y += len;
        }
    }
}

/* A NULL dxs[i] skips input i (it needs no gradient). */
void aibox_concat_bwd(int n, int k, const int *cs, int hw, const float *dy, float *const *dxs)
{
    for (int s = 0; s < n; s++) {
        for (int i = 0; i < k; i++) {
            const size_t len = (size_t)cs[i] * hw;
            if (dxs[i]) {
                float *d = dxs[i] + (size_t)s * len;
                for (size_t j = 0; j < len; j++) d[j] += dy[j];
            }
            dy += len;
        }
    }
}

void aibox_add_fwd(size_t count, const float *a, const float *b, float *y)
{
    for (size_t i = 0; i < count; i++) y[i] = a[i] + b[i];
}

/* ------------------------------------------------------------ nearest */
/* Source index as PyTorch's 'nearest' (upsample_nearest2d without scale
 * factors): identity for equal sizes, dst/2 for exact doubling, otherwise
 * min(floor(dst * (float)in/out), in-1) evaluated in float. The float scale
 * can differ from the exact floor(dst*in/out) in rare cases (e.g. in 2, out
 * 82, dst 41 gives 0); matching PyTorch bit for bit is what model parity needs. */
static inline int nearest_src(int dst, int in, int out, float scale)
{
    if (out == in) return dst;
    if (out == 2 * in) return dst >> 1;
    int s = (int)floorf((float)dst * scale);
    return s < in - 1 ? s : in - 1;
}

void aibox_upsample_nearest_fwd(int n, int c, int h, int w, int oh, int ow, const float *x, float *y)
{
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0 || oh <= 0 || ow <= 0) return;
    const float sy = (float)h / (float)oh, sx = (float)w / (float)ow;
    const size_t planes = (size_t)n * c;
    for (size_t p = 0; p < planes; p++) {
        const float *xp = x + p * (size_t)h * w;
        float *yp = y + p * (size_t)oh * ow;
        int prev = -1;
        for (int oy = 0; oy < oh; oy++) {
            const int iy = nearest_src(oy, h, oh, sy);
            float *row = yp + (size_t)oy * ow;
            if (iy == prev) { /* upsampling repeats rows: copy the one just built */
                memcpy(row, row - ow, (size_t)ow * sizeof *row);
                continue;
            }
            prev = iy;
            const float *src = xp + (size_t)iy * w;
            for (int ox = 0; ox < ow; ox++) row[ox] = src[nearest_src(ox, w, ow, sx)];
        }
    }
}

void aibox_upsample_nearest_bwd(int n, int c, int h, int w, int oh, int ow, const float *dy, float *dx)
{
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0 || oh <= 0 || ow <= 0) return;
    const float sy = (float)h / (float)oh, sx = (float)w / (float)ow;
    const size_t planes = (size_t)n * c;
    for (size_t p = 0; p < planes; p++) {
        const float *gp = dy + p * (size_t)oh * ow;
        float *dxp = dx + p * (size_t)h * w;
        for (int oy = 0; oy < oh; oy++) {
            const float *g = gp + (size_t)oy * ow;
            float *d = dxp + (size_t)nearest_src(oy, h, oh, sy) * w;
            for (int ox = 0; ox < ow; ox++) d[nearest_src(ox, w, ow, sx)] += g[ox];
        }
    }
}

/* ------------------------------------------------------------ bilinear */
/* One axis of PyTorch's align_corners=false interpolation, in float as
 * PyTorch computes it for float tensors: src = (dst + 0.5)*in/out - 0.5,
 * clamped at 0; i0 = floor(src) (at most in-1), i1 = i0+1 except at the last
 * cell; weights (1-l, l). Equal sizes are the identity. */
static inline void bilinear_axis(int dst, int in, int out, float scale, int *i0, int *i1, float *l0, float *l1)
{
    if (in == out) {
        *i0 = *i1 = dst;
        *l0 = 1.0f;
        *l1 = 0.0f;
        return;
    }
    float src = scale * ((float)dst + 0.5f) - 0.5f;
    if (src < 0.0f) src = 0.0f;
    int i = (int)floorf(src);
    if (i > in - 1) i = in - 1;
    float l = src - (float)i;
    l = l < 0.0f ? 0.0f : (l > 1.0f ? 1.0f : l);
    *i0 = i;
    *i1 = i < in - 1 ? i + 1 : i;
    *l1 = l;
    *l0 = 1.0f - l;
}

void aibox_upsample_bilinear_fwd(int n, int c, int h, int w, int oh, int ow, const float *x, float *y)
{
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0 || oh <= 0 || ow <= 0) return;
    const float sy = (float)h / (float)oh, sx = (float)w / (float)ow;
    const size_t planes = (size_t)n * c;
    for (size_t p = 0; p < planes; p++) {
        const float *xp = x + p * (size_t)h * w;
        float *yp = y + p * (size_t)oh * ow;
        for (int oy = 0; oy < oh; oy++) {
            int y0, y1;
            float ly0, ly1;
            bilinear_axis(oy, h, oh, sy, &y0, &y1, &ly0, &ly1);
            const float *r0 = xp + (size_t)y0 * w, *r1 = xp + (size_t)y1 * w;
            float *row = yp + (size_t)oy * ow;
            for (int ox = 0; ox < ow; ox++) {
                int x0, x1;
                float lx0, lx1;
                bilinear_axis(ox, w, ow, sx, &x0, &x1, &lx0, &lx1);
                row[ox] = ly0 * (lx0 * r0[x0] + lx1 * r0[x1]) + ly1 * (lx0 * r1[x0] + lx1 * r1[x1]);
            }
        }
    }
}

void aibox_upsample_bilinear_bwd(int n, int c, int h, int w, int oh, int ow, const float *dy, float *dx)
{
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0 || oh <= 0 || ow <= 0) return;
    const float sy = (float)h / (float)oh, sx = (float)w / (float)ow;
    const size_t planes = (size_t)n * c;
    for (size_t p = 0; p < planes; p++) {
        const float *gp = dy + p * (size_t)oh * ow;
        float *dxp = dx + p * (size_t)h * w;
        for (int oy = 0; oy < oh; oy++) {
            int y0, y1;
            float ly0, ly1;
            bilinear_axis(oy, h, oh, sy, &y0, &y1, &ly0, &ly1);
            float *r0 = dxp + (size_t)y0 * w, *r1 = dxp + (size_t)y1 * w;
            const float *g = gp + (size_t)oy * ow;
            for (int ox = 0; ox < ow; ox++) {
                int x0, x1;
                float lx0, lx1;
                bilinear_axis(ox, w, ow, sx, &x0, &x1, &lx0, &lx1);
                /* r0 and r1 (and x0, x1) coincide at the border: += keeps both shares */
                r0[x0] += ly0 * lx0 * g[ox];
                r0[x1] += ly0 * lx1 * g[ox];
                r1[x0] += ly1 * lx0 * g[ox];
                r1[x1] += ly1 * lx1 * g[ox];
            }
        }
    }
}
