/* 2-D convolution on OpenBLAS: im2col in chunks of output pixels, so the
 * column buffer stays in cache (a whole AlexNet-256 column matrix would be
 * 75 MB per image), then one sgemm per chunk and group. Depthwise-style
 * convolutions (one input channel per group) use direct loops: a GEMM with
 * M = 1 wastes the BLAS (the model's layer runs the 3x3 ones, MobileNet's,
 * through dwconv.c's vector kernels: the same arithmetic in the same order). */
#include <cblas.h>
#include <string.h>

#include "ops/ops.h"

/* Target column-buffer size per chunk (floats): 512 KB, inside a core's L2
 * (measured on AlexNet-256: 2 MB chunks made conv1, K = 27, 40 % slower). */
#define CHUNK_FLOATS (128 * 1024)
#define CHUNK_MIN 256

int aibox_conv_out_size(int in, int k, int s, int pad0, int pad1)
{
    long v = (long)in + pad0 + pad1 - k;
    if (v < 0 || s <= 0) return 0;
    return (int)(v / s + 1);
}

/* one input channel per group of a grouped conv (depthwise): direct loops */
static int is_direct(const aibox_conv_desc *d) { return d->groups > 1 && d->in_c / d->groups == 1; }
static int is_pointwise(const aibox_conv_desc *d)
{
    return d->kh == 1 && d->kw == 1 && d->sh == 1 && d->sw == 1 && d->pt == 0 && d->pl == 0 &&
           d->out_h == d->in_h && d->out_w == d->in_w;
}
static int col_rows(const aibox_conv_desc *d) { return d->in_c / d->groups * d->kh * d->kw; }
static int chunk_cols(const aibox_conv_desc *d)
{
    int P = d->out_h * d->out_w, K = col_rows(d);
    int c = CHUNK_FLOATS / (K > 0 ? K : 1);
    if (c < CHUNK_MIN) c = CHUNK_MIN;
    return c < P ? c : P;
}

size_t aibox_conv_ws_floats(const aibox_conv_desc *d)
{
    if (is_direct(d) || is_pointwise(d)) return 0;
    /* col for forward; col + dcol for backward */
    return 2 * (size_t)col_rows(d) * (size_t)chunk_cols(d);
}

/* Range of output columns j in [0, run) whose input ix0 + j*s lies in [0, w). */
static void valid_range(int ix0, int s, int run, int w, int *lo, int *hi)
{
    int a = ix0 >= 0 ? 0 : (-ix0 + s - 1) / s;
    int b = w - ix0 <= 0 ? 0 : (w - ix0 + s - 1) / s;
    if (a > run) a = run;
    if (b > run) b = run;
    if (b < a) b = a;
    *lo = a;
    *hi = b;
}

/* col (K x np) from the cg channels at x for output pixels [p0, p0+np). */
static void im2col(const aibox_conv_desc *d, int cg, const float *x, int p0, int np, float *col)
{
    const int H = d->in_h, W = d->in_w, OW = d->out_w;
    for (int c = 0; c < cg; c++)
        for (int ky = 0; ky < d->kh; ky++)
            for (int kx = 0; kx < d->kw; kx++) {
                float *dst = col + (size_t)((c * d->kh + ky) * d->kw + kx) * np;
                const float *src = x + (size_t)c * H * W;
                int oy = p0 / OW, ox = p0 % OW;
                for (int i = 0; i < np;) {
                    int run = AIBOX_MIN(OW - ox, np - i);
                    int iy = oy * d->sh - d->pt + ky;
                    if (iy < 0 || iy >= H) {
                        memset(dst + i, 0, sizeof(float) * run);
                    } else {
                        const float *row = src + (size_t)iy * W;
                        int ix0 = ox * d->sw - d->pl + kx, lo, hi;
                        valid_range(ix0, d->sw, run, W, &lo, &hi);
                        float *o = dst + i;
                        for (int j = 0; j < lo; j++) o[j] = 0;
                        if (d->sw == 1) memcpy(o + lo, row + ix0 + lo, sizeof(float) * (hi - lo));
                        else
                            for (int j = lo; j < hi; j++) o[j] = row[ix0 + j * d->sw];
                        for (int j = hi; j < run; j++) o[j] = 0;
                    }
                    i += run;
                    ox = 0;
                    oy++;
                }
            }
}

/* dx += col2im(dcol): the adjoint of im2col. */
static void col2im_add(const aibox_conv_desc *d, int cg, const float *col, int p0, int np, float *dx)
{
    const int H = d->in_h, W = d->in_w, OW = d->out_w;
    for (int c = 0; c < cg; c++)
        for (int ky = 0; ky < d->kh; ky++)
            for (int kx = 0; kx < d->kw; kx++) {
                const float *srcc = col + (size_t)((c * d->kh + ky) * d->kw + kx) * np;
                float *dst = dx + (size_t)c * H * W;
                int oy = p0 / OW, ox = p0 % OW;
                for (int i = 0; i < np;) {
                    int run = AIBOX_MIN(OW - ox, np - i);
                    int iy = oy * d->sh - d->pt + ky;
                    if (iy >= 0 && iy < H) {
                        float *row = dst + (size_t)iy * W;
                        int ix0 = ox * d->sw - d->pl + kx, lo, hi;
                        valid_range(ix0, d->sw, run, W, &lo, &hi);
                        const float *s = srcc + i;
                        if (d->sw == 1)
                            for (int j = lo; j < hi; j++) row[ix0 + j] += s[j];
                        else
                            for (int j = lo; j < hi; j++) row[ix0 + j * d->sw] += s[j];
                    }
                    i += run;
                    ox = 0;
                    oy++;
                }
            }
}

/* Depthwise-style direct convolution: output channel oc reads input channel
 * oc / (out_c / groups). */
static void direct_fwd(const aibox_conv_desc *d, const float *x, const float *w, const float *b, float *y, int o0,
                       int o1)
{
    const int H = d->in_h, W = d->in_w, OH = d->out_h, OW = d->out_w, mult = d->out_c / d->groups;
    for (int oc = o0; oc < o1; oc++) {
        const float *xc = x + (size_t)(oc / mult) * H * W;
        const float *wk = w + (size_t)oc * d->kh * d->kw;
        float *yc = y + (size_t)oc * OH * OW;
        float bias = b ? b[oc] : 0.0f;
        for (int i = 0; i < OH * OW; i++) yc[i] = bias;
        for (int ky = 0; ky < d->kh; ky++)
            for (int kx = 0; kx < d->kw; kx++) {
                float wv = wk[ky * d->kw + kx];
                for (int oy = 0; oy < OH; oy++) {
                    int iy = oy * d->sh - d->pt + ky;
                    if (iy < 0 || iy >= H) continue;
                    int ix0 = -d->pl + kx, lo, hi;
                    valid_range(ix0, d->sw, OW, W, &lo, &hi);
                    const float *row = xc + (size_t)iy * W;
                    float *yr = yc + (size_t)oy * OW;
                    if (d->sw == 1)
                        for (int j = lo; j < hi; j++) yr[j] += wv * row[ix0 + j];
                    else
                        for (int j = lo; j < hi; j++) yr[j] += wv * row[ix0 + j * d->sw];
                }
            }
    }
}

static void direct_bwd(const aibox_conv_desc *d, const float *x, const float *w, const float *dy, float *dx,
                       float *dw, float *db)
{
    const int H = d->in_h, W = d->in_w, OH = d->out_h, OW = d->out_w, mult = d->out_c / d->groups;
    for (int oc = 0; oc < d->out_c; oc++) {
        const float *xc = x + (size_t)(oc / mult) * H * W;
        float *dxc = dx ? dx + (size_t)(oc / mult) * H * W : NULL;
        const float *wk = w + (size_t)oc * d->kh * d->kw;
        float *dwk = dw ? dw + (size_t)oc * d->kh * d->kw : NULL;
        const float *dyc = dy + (size_t)oc * OH * OW;
        if (db) {
            double s = 0;
            for (int i = 0; i < OH * OW; i++) s += dyc[i];
            db[oc] += (float)s;
        }
        for (int ky = 0; ky < d->kh; ky++)
            for (int kx = 0; kx < d->kw; kx++) {
                float wv = wk[ky * d->kw + kx];
                float acc = 0;
                for (int oy = 0; oy < OH; oy++) {
                    int iy = oy * d->sh - d->pt + ky;
                    if (iy < 0 || iy >= H) continue;
                    int ix0 = -d->pl + kx, lo, hi;
                    valid_range(ix0, d->sw, OW, W, &lo, &hi);
                    const float *row = xc + (size_t)iy * W;
                    const float *g = dyc + (size_t)oy * OW;
                    for (int j = lo; j < hi; j++) acc += g[j] * row[ix0 + j * d->sw];
                    if (dxc) {
                        float *dr = dxc + (size_t)iy * W;
                        for (int j = lo; j < hi; j++) dr[ix0 + j * d->sw] += wv * g[j];
                    }
                }
                if (dwk) dwk[ky * d->kw + kx] += acc;
            }
    }
}

/* Sum of n floats in 16 independent lanes, so the compiler can vectorise it
 * (a single float accumulator is a serial dependency chain; the lanes keep
 * a fixed order, so the result is deterministic). */
static float sum16(const float *g, size_t n)
{
    float lane[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++) lane[k] += g[i + k];
    float acc = 0;
    for (int k = 0; k < 16; k++) acc += lane[k];
    for (; i < n; i++) acc += g[i];
    return acc;
}

static void relu_inplace(float *y, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = y[i] > 0.0f ? y[i] : 0.0f;
}

/* The epilogue on one output channel's run of pixels: y = y * scale + shift
 * (scale NULL: y + shift; shift NULL: nothing), then max(0, .) when relu. */
static void epilogue(float *y, size_t n, const float *scale, const float *shift, int ch, int relu)
{
    float sv = scale ? scale[ch] : 1.0f, bv = shift ? shift[ch] : 0.0f;
    if (scale)
        for (size_t i = 0; i < n; i++) y[i] = y[i] * sv + bv;
    else if (shift)
        for (size_t i = 0; i < n; i++) y[i] += bv;
    if (relu) relu_inplace(y, n);
}

void aibox_conv_fwd_part(const aibox_conv_desc *d, int n, const float *x, const float *w, const float *scale,
                         const float *b, float *y, float *ws, int relu, int part, int parts)
{
    const int G = d->groups, cg = d->in_c / G, ocg = d->out_c / G, K = col_rows(d);
    const size_t P = (size_t)d->out_h * d->out_w, HW = (size_t)d->in_h * d->in_w;
    for (int s = 0; s < n; s++) {
        const float *xs = x + (size_t)s * d->in_c * HW;
        float *ys = y + (size_t)s * d->out_c * P;
        if (is_direct(d)) {
            /* direct path: this part's output channels */
            int o0, o1;
            aibox_share(d->out_c, 1, part, parts, &o0, &o1);
            direct_fwd(d, xs, w, scale ? NULL : b, ys, o0, o1);
            if (scale || relu)
                for (int oc = o0; oc < o1; oc++) epilogue(ys + (size_t)oc * P, P, scale, scale ? b : NULL, oc, relu);
            continue;
        }
        int chunk = is_pointwise(d) ? (int)P : chunk_cols(d), pa, pb;
        /* this part's output pixels: an even share in multiples of 16 (whole chunks
         * would leave parts unequal when there are only a few chunks), then
         * walked in chunks */
        aibox_share((int)P, 16, part, parts, &pa, &pb);
        for (int g = 0; g < G; g++) {
            const float *xg = xs + (size_t)g * cg * HW;
            const float *wg = w + (size_t)g * ocg * K;
            float *yg = ys + (size_t)g * ocg * P;
            for (int p0 = pa; p0 < pb; p0 += chunk) {
                int np = AIBOX_MIN(chunk, pb - p0);
                const float *B = xg + p0;
                int ldb = (int)P;
                if (!is_pointwise(d)) {
                    im2col(d, cg, xg, p0, np, ws);
                    B = ws, ldb = np;
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ocg, np, K, 1.0f, wg, K, B, ldb, 0.0f, yg + p0,
                            (int)P);
                /* bias (or folded batch norm) and activation while the chunk is still in cache */
                for (int oc = 0; oc < ocg; oc++) {
                    float *yc = yg + (size_t)oc * P + p0;
                    if (!scale && relu) {
                        float bv = b ? b[g * ocg + oc] : 0.0f;
                        for (int i = 0; i < np; i++) yc[i] = yc[i] + bv > 0.0f ? yc[i] + bv : 0.0f;
                    } else {
                        epilogue(yc, (size_t)np, scale, b, g * ocg + oc, relu);
                    }
                }
            }
        }
    }
}

void aibox_conv_fwd(const aibox_conv_desc *d, int n, const float *x, const float *w, const float *b, float *y,
                    float *ws)
{
    aibox_conv_fwd_part(d, n, x, w, NULL, b, y, ws, 0, 0, 1);
}

/* dy *= (y > 0) over n values at i0 (a fused ReLU's backward), each value
 * below P16 (the plane's last multiple of 16) also added to lane[i & 15] (i
 * counted from the plane's start) when lane is not NULL: with the values
 * from P16 on added afterwards, in order, this is sum16's arithmetic chunk
 * by chunk. */
static void mask_sum_run(float *g, const float *y, size_t i0, size_t n, size_t P16, float *lane)
{
    size_t i = i0, e = i0 + n;
    if (y)
        for (size_t k = i0; k < e; k++) g[k] = y[k] > 0.0f ? g[k] : 0.0f;
    if (!lane) return;
    size_t body = AIBOX_MIN(e, P16);
    for (; i < body && (i & 15); i++) lane[i & 15] += g[i];
    for (; i + 16 <= body; i += 16)
        for (int k = 0; k < 16; k++) lane[k] += g[i + k];
    for (; i < body; i++) lane[i & 15] += g[i];
}

/* Chunk lanes for the bias gradient: at most this many output channels per
 * group (else the bias sum takes sum16's separate pass). */
#define LANE_CH 512

void aibox_conv_bwd_ex(const aibox_conv_desc *d, int n, const float *x, const float *w, const float *relu_y, float *dy,
                       float *dx, int dx_assign, float *dw, float *db, float *ws)
{
    const int G = d->groups, cg = d->in_c / G, ocg = d->out_c / G, K = col_rows(d);
    const size_t P = (size_t)d->out_h * d->out_w, HW = (size_t)d->in_h * d->in_w, P16 = P & ~(size_t)15;
    const int chunked = !is_direct(d) && !is_pointwise(d);
    for (int s = 0; s < n; s++) {
        const float *xs = x + (size_t)s * d->in_c * HW;
        float *dxs = dx ? dx + (size_t)s * d->in_c * HW : NULL;
        float *dys = dy + (size_t)s * d->out_c * P;
        const float *ys = relu_y ? relu_y + (size_t)s * d->out_c * P : NULL;
        if (dxs && dx_assign) memset(dxs, 0, sizeof(float) * d->in_c * HW);
        if (!chunked || ocg > LANE_CH) { /* whole planes: mask, bias, then as before */
            if (ys) mask_sum_run(dys, ys, 0, (size_t)d->out_c * P, 0, NULL);
            if (is_direct(d)) {
                direct_bwd(d, xs, w, dys, dxs, dw, db);
                continue;
            }
            if (db)
                for (int oc = 0; oc < d->out_c; oc++) db[oc] += sum16(dys + (size_t)oc * P, P);
        }
        for (int g = 0; g < G; g++) {
            const float *xg = xs + (size_t)g * cg * HW;
            float *dxg = dxs ? dxs + (size_t)g * cg * HW : NULL;
            const float *wg = w + (size_t)g * ocg * K;
            float *dwg = dw ? dw + (size_t)g * ocg * K : NULL;
            float *dyg = dys + (size_t)g * ocg * P;
            if (is_pointwise(d)) {
                if (dwg)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ocg, K, (int)P, 1.0f, dyg, (int)P, xg,
                                (int)P, 1.0f, dwg, K);
                if (dxg)
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, (int)P, ocg, 1.0f, wg, K, dyg, (int)P,
                                1.0f, dxg, (int)P);
                continue;
            }
            /* per output channel, the bias gradient's 16 lanes and tail, carried over the chunks */
            float lanes[LANE_CH][16];
            const int fused = ocg <= LANE_CH;
            const float *yg = ys ? ys + (size_t)g * ocg * P : NULL;
            if (fused && db) memset(lanes, 0, sizeof(float) * 16 * ocg);
            int chunk = chunk_cols(d);
            float *col = ws, *dcol = ws + (size_t)K * chunk;
            for (int p0 = 0; p0 < (int)P; p0 += chunk) {
                int np = AIBOX_MIN(chunk, (int)P - p0);
                if (fused && (yg || db))
                    for (int oc = 0; oc < ocg; oc++)
                        mask_sum_run(dyg + (size_t)oc * P, yg ? yg + (size_t)oc * P : NULL, (size_t)p0, (size_t)np,
                                     P16, db ? lanes[oc] : NULL);
                if (dwg) { /* the columns serve the weight gradient only */
                    im2col(d, cg, xg, p0, np, col);
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ocg, K, np, 1.0f, dyg + p0, (int)P, col, np,
                                1.0f, dwg, K);
                }
                if (dxg) {
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, np, ocg, 1.0f, wg, K, dyg + p0, (int)P,
                                0.0f, dcol, np);
                    col2im_add(d, cg, dcol, p0, np, dxg);
                }
            }
            if (fused && db)
                for (int oc = 0; oc < ocg; oc++) {
                    float acc = 0;
                    for (int k = 0; k < 16; k++) acc += lanes[oc][k];
                    for (size_t i = P16; i < P; i++) acc += dyg[(size_t)oc * P + i];
                    db[g * ocg + oc] += acc;
                }
        }
    }
}

void aibox_conv_bwd(const aibox_conv_desc *d, int n, const float *x, const float *w, const float *dy, float *dx,
                    float *dw, float *db, float *ws)
{
    /* dy is only written when relu_y is given */
    aibox_conv_bwd_ex(d, n, x, w, NULL, (float *)(uintptr_t)dy, dx, 0, dw, db, ws);
}

/* ---- plain-C reference path (double accumulation), for the tests ---- */
void aibox_conv_fwd_ref(const aibox_conv_desc *d, int n, const float *x, const float *w, const float *b, float *y)
{
    const int cg = d->in_c / d->groups, ocg = d->out_c / d->groups;
    for (int s = 0; s < n; s++)
        for (int oc = 0; oc < d->out_c; oc++) {
            int g = oc / ocg;
            for (int oy = 0; oy < d->out_h; oy++)
                for (int ox = 0; ox < d->out_w; ox++) {
                    double acc = b ? b[oc] : 0.0;
                    for (int c = 0; c < cg; c++)
                        for (int ky = 0; ky < d->kh; ky++)
                            for (int kx = 0; kx < d->kw; kx++) {
                                int iy = oy * d->sh - d->pt + ky, ix = ox * d->sw - d->pl + kx;
                                if (iy < 0 || iy >= d->in_h || ix < 0 || ix >= d->in_w) continue;
                                acc += (double)x[(((size_t)s * d->in_c + g * cg + c) * d->in_h + iy) * d->in_w + ix] *
                                       w[(((size_t)oc * cg + c) * d->kh + ky) * d->kw + kx];
                            }
                    y[(((size_t)s * d->out_c + oc) * d->out_h + oy) * d->out_w + ox] = (float)acc;
                }
        }
}

void aibox_conv_bwd_ref(const aibox_conv_desc *d, int n, const float *x, const float *w, const float *dy, float *dx,
                        float *dw, float *db)
{
    const int cg = d->in_c / d->groups, ocg = d->out_c / d->groups;
    for (int s = 0; s < n; s++)
        for (int oc = 0; oc < d->out_c; oc++) {
            int g = oc / ocg;
            for (int oy = 0; oy < d->out_h; oy++)
                for (int ox = 0; ox < d->out_w; ox++) {
                    float gv = dy[(((size_t)s * d->out_c + oc) * d->out_h + oy) * d->out_w + ox];
                    if (db) db[oc] += gv;
                    for (int c = 0; c < cg; c++)
                        for (int ky = 0; ky < d->kh; ky++)
                            for (int kx = 0; kx < d->kw; kx++) {
                                int iy = oy * d->sh - d->pt + ky, ix = ox * d->sw - d->pl + kx;
                                if (iy < 0 || iy >= d->in_h || ix < 0 || ix >= d->in_w) continue;
                                size_t xi = (((size_t)s * d->in_c + g * cg + c) * d->in_h + iy) * d->in_w + ix;
                                size_t wi = (((size_t)oc * cg + c) * d->kh + ky) * d->kw + kx;
                                dw[wi] += gv * x[xi];
                                if (dx) dx[xi] += gv * w[wi];
                            }
                }
        }
}
